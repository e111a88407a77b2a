# Sourced by setup.sh and wine-run: where the iomodels Wine prefix lives and
# which Wine binaries to use. Defines variables and functions only.

# The dedicated prefix; IOMODELS_WINEPREFIX moves it.
iomodels_wineprefix() {
    if [ -n "${IOMODELS_WINEPREFIX:-}" ]; then
        printf '%s\n' "$IOMODELS_WINEPREFIX"
    elif [ -n "${HOME:-}" ]; then
        printf '%s\n' "$HOME/.local/share/iomodels/wine"
    else
        echo "iomodels wine: HOME is not set; set IOMODELS_WINEPREFIX to a directory for the Wine prefix" >&2
        return 1
    fi
}

# The 64-bit Wine loader. Debian's /usr/bin/wine is a script that prefers a
# 32-bit wine and, without it, prints a wine32 hint; call the loader itself.
iomodels_wine() {
    local c
    for c in /usr/lib/wine/wine64 "$(command -v wine64 || true)" "$(command -v wine || true)"; do
        if [ -n "$c" ] && [ -x "$c" ]; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    return 1
}

iomodels_wineserver() {
    local c
    for c in /usr/lib/wine/wineserver "$(command -v wineserver || true)"; do
        if [ -n "$c" ] && [ -x "$c" ]; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    return 1
}

# Stamp in the prefix: written by setup.sh when the prefix is ready.
# shellcheck disable=SC2034 # used by the scripts that source this file
IOMODELS_WINE_STAMP=.iomodels-setup
