/*
 * bcryptprimitives.dll shim for Wine 8.0, which has no bcryptprimitives.dll,
 * so its ProcessPrng (imported by Rust's std since 1.78 for HashMap seeds
 * and friends) cannot be resolved and every Rust exe dies at load.
 *
 * This DLL exports the one function std imports:
 *     BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData);
 * and fills the buffer from RtlGenRandom (advapi32!SystemFunction036),
 * which Wine implements over the host's random source.
 *
 * Built by tools/windows/setup.sh into the iomodels Wine prefix as
 * drive_c/windows/system32/bcryptprimitives.dll. Windows itself never
 * sees it: real Windows has bcryptprimitives.dll.
 */
#include <windows.h>

/* advapi32!SystemFunction036, known as RtlGenRandom. Declared here rather than
 * through ntsecapi.h's macro so the import is explicit. */
__declspec(dllimport) BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG (32 bits); split larger requests. */
    const SIZE_T chunk_max = 0xFFFFFFFFu;
    while (len > 0) {
        ULONG chunk = (ULONG)(len > chunk_max ? chunk_max : len);
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    /* Documented to always return TRUE; std ignores the value. */
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)reserved;
    if (reason == DLL_PROCESS_ATTACH)
        DisableThreadLibraryCalls(instance);
    return TRUE;
}
