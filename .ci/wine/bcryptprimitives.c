/* bcryptprimitives.dll for Wine 8 (Debian 12's), which lacks it: Rust's standard library
 * (1.78 and later) takes its random bytes from ProcessPrng there, and a program that cannot
 * import it does not start. Windows itself has the real one; this is for tests under Wine. */
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!RtlGenRandom(data, n)) return FALSE;
        data += n; len -= n;
    }
    return TRUE;
}
