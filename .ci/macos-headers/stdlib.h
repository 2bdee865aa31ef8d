/* Stub libc header for compiling ring's C for macOS on Linux (see TargetConditionals.h). */
#ifndef STDLIB_STUB_H
#define STDLIB_STUB_H
#include <stddef.h>
void abort(void);
#endif
