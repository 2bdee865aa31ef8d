/* ProcessPrng for Wine 8 (Debian bookworm's wine64), which lacks bcryptprimitives.dll:
 * Rust's standard library for Windows (since 1.78) takes its random bytes (HashMap seeds)
 * from ProcessPrng there, so no Rust program starts under that Wine without it. Windows 10
 * and later, and Wine 9 and later, have the real DLL; this one is only put into the test's
 * own Wine prefix by .ci/install-platforms. It fills the buffer from RtlGenRandom
 * (advapi32's SystemFunction036), which Wine does provide. */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!RtlGenRandom(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
