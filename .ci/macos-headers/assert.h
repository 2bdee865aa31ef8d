/* Stub libc header for compiling ring's C for macOS on Linux (see TargetConditionals.h). */
#ifndef ASSERT_STUB_H
#define ASSERT_STUB_H
#define assert(x) ((void)0)
#define static_assert _Static_assert
#endif
