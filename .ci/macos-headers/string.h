/* Stub libc header for compiling ring's C for macOS on Linux (see TargetConditionals.h). */
#ifndef STRING_STUB_H
#define STRING_STUB_H
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
#endif
