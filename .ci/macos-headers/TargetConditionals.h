/* The one Apple SDK header ring's C code includes, for `cargo check --target
 * x86_64-apple-darwin` on Linux (.ci/checks/35-platforms): no macOS SDK is installed here,
 * and the check only needs the C to compile, never to link or run. */
#ifndef TARGET_CONDITIONALS_STUB_H
#define TARGET_CONDITIONALS_STUB_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
#endif
