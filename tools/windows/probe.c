/*
 * Self-test that tools/windows/setup.sh runs in the new prefix:
 *  - ntdll exports wine_get_version (so we are under Wine, and code can
 *    detect Wine the same way);
 *  - bcryptprimitives.dll loads and its ProcessPrng fills a buffer, which is
 *    what Rust's std needs at start-up.
 * Prints one line and exits 0, or says what failed and exits 1.
 */
#include <stdio.h>
#include <string.h>
#include <windows.h>

typedef const char *(CDECL *wine_get_version_fn)(void);
typedef BOOL(WINAPI *process_prng_fn)(PBYTE, SIZE_T);

int main(void)
{
    HMODULE ntdll = GetModuleHandleA("ntdll.dll");
    wine_get_version_fn wine_get_version =
        ntdll ? (wine_get_version_fn)(void *)GetProcAddress(ntdll, "wine_get_version") : NULL;
    if (!wine_get_version) {
        printf("probe: ntdll has no wine_get_version: not running under Wine\n");
        return 1;
    }

    HMODULE bp = LoadLibraryA("bcryptprimitives.dll");
    if (!bp) {
        printf("probe: bcryptprimitives.dll does not load (error %lu)\n", GetLastError());
        return 1;
    }
    process_prng_fn prng = (process_prng_fn)(void *)GetProcAddress(bp, "ProcessPrng");
    if (!prng) {
        printf("probe: bcryptprimitives.dll has no ProcessPrng\n");
        return 1;
    }
    BYTE a[64], b[64];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    if (!prng(a, sizeof a) || !prng(b, sizeof b) || memcmp(a, b, sizeof a) == 0) {
        printf("probe: ProcessPrng gave no random bytes\n");
        return 1;
    }
    printf("probe: wine %s; ProcessPrng ok\n", wine_get_version());
    return 0;
}
