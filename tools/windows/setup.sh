#!/usr/bin/env bash
# Makes this Debian machine build the workspace for Windows and run the
# results under Wine: mingw-w64 and Wine from Debian, Rust's
# x86_64-pc-windows-gnu target, and a dedicated Wine prefix (headless) with
# the bcryptprimitives.dll shim that Rust exes need on Wine 8.0.
# Idempotent: a second run checks and returns in a moment.
#
# The prefix is $IOMODELS_WINEPREFIX, by default ~/.local/share/iomodels/wine;
# tools/windows/wine-run (cargo's runner for the target) uses the same one.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/windows/wine-env.sh
. "$here/wine-env.sh"

TARGET=x86_64-pc-windows-gnu
CC=x86_64-w64-mingw32-gcc
# Bump when the prefix set-up below changes, so existing prefixes are redone.
SETUP_VERSION=1

step() { echo "== windows setup: $*"; }
die() {
    echo "windows setup: ERROR: $*" >&2
    exit 1
}

# --- Debian packages -------------------------------------------------------
missing=()
command -v "$CC" >/dev/null 2>&1 || missing+=(gcc-mingw-w64-x86-64)
command -v x86_64-w64-mingw32-objdump >/dev/null 2>&1 || missing+=(binutils-mingw-w64-x86-64)
if ! iomodels_wine >/dev/null || ! iomodels_wineserver >/dev/null; then
    missing+=(wine wine64)
fi
if [ ${#missing[@]} -eq 0 ]; then
    step "packages: mingw-w64 and wine are installed"
else
    step "packages: installing ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 ||
        die "no apt-get: install ${missing[*]} (or your system's mingw-w64 gcc and 64-bit wine) by hand"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install ${missing[*]}"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
    command -v "$CC" >/dev/null 2>&1 || die "$CC is still missing after the install"
    iomodels_wine >/dev/null || die "wine is still missing after the install"
    iomodels_wineserver >/dev/null || die "wineserver is still missing after the install"
fi
wine="$(iomodels_wine)"
wineserver="$(iomodels_wineserver)"
wine_version="$("$wine" --version 2>/dev/null)" || die "$wine --version failed"

# --- Rust target -----------------------------------------------------------
if command -v rustup >/dev/null 2>&1; then
    if rustup target list --installed | grep -qx "$TARGET"; then
        step "rust: target $TARGET is installed"
    else
        step "rust: adding target $TARGET"
        rustup target add "$TARGET" || die "rustup target add $TARGET failed"
    fi
else
    sysroot="$(rustc --print sysroot 2>/dev/null)" || die "neither rustup nor rustc found"
    [ -d "$sysroot/lib/rustlib/$TARGET" ] ||
        die "no rustup, and rustc at $sysroot has no $TARGET standard library"
    step "rust: target $TARGET is in $sysroot"
fi

# --- Wine prefix -----------------------------------------------------------
prefix="$(iomodels_wineprefix)"
stamp="$prefix/$IOMODELS_WINE_STAMP"
shim_sum="$(cat "$here/processprng.c" "$here/probe.c" | sha256sum | cut -d' ' -f1)"
want="setup=$SETUP_VERSION $wine_version shim=$shim_sum"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
    [ -f "$prefix/drive_c/windows/system32/bcryptprimitives.dll" ]; then
    step "wine prefix: $prefix is ready ($wine_version)"
    exit 0
fi
rm -f "$stamp"

# Headless and quiet: no X display (nothing to show, and wineboot must not
# wait for one), no Mono/Gecko install prompts, no desktop menu entries.
unset DISPLAY WAYLAND_DISPLAY
export WINEPREFIX="$prefix" WINEDEBUG=-all
case "$wine" in
    /usr/lib/wine/*) export WINELOADER="$wine" ;;
esac
log="$(mktemp -t iomodels-wine-setup.XXXXXX)"
trap 'rm -f "$log"' EXIT
run_logged() { # DESCRIPTION COMMAND...: run with output to the log; on failure show it.
    local what="$1"
    shift
    if ! "$@" >>"$log" 2>&1; then
        cat "$log" >&2
        die "$what failed: $*"
    fi
}

mkdir -p "$(dirname "$prefix")" || die "cannot create $(dirname "$prefix") for the Wine prefix"
step "wine prefix: initialising $prefix ($wine_version)"
WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d" \
    run_logged "wineboot" timeout 600 "$wine" wineboot --init
# The registry reaches the prefix's files only when the wineserver exits.
run_logged "waiting for the wineserver" timeout 120 "$wineserver" -w
[ -d "$prefix/drive_c/windows/system32" ] || die "wineboot made no $prefix/drive_c/windows/system32"

step "wine prefix: building the ProcessPrng shim (bcryptprimitives.dll)"
build="$(mktemp -d -t iomodels-wine-build.XXXXXX)"
trap 'rm -f "$log"; rm -rf "$build"' EXIT
run_logged "compiling processprng.c" "$CC" -O2 -Wall -Wextra -shared -s \
    -o "$build/bcryptprimitives.dll" "$here/processprng.c" -ladvapi32
run_logged "compiling probe.c" "$CC" -O2 -Wall -Wextra -s -o "$build/probe.exe" "$here/probe.c"
cp "$build/bcryptprimitives.dll" "$prefix/drive_c/windows/system32/bcryptprimitives.dll"
# Wine 8.0 has no builtin bcryptprimitives, so the native file loads anyway;
# the override keeps the shim first should a Wine with a builtin one come.
run_logged "setting the DLL override" "$wine" reg add 'HKCU\Software\Wine\DllOverrides' \
    /v bcryptprimitives /d native,builtin /f
run_logged "disabling winemenubuilder" "$wine" reg add 'HKCU\Software\Wine\DllOverrides' \
    /v winemenubuilder.exe /d "" /f

step "wine prefix: checking it with a probe exe"
out="$("$wine" "$build/probe.exe" 2>>"$log")" || {
    cat "$log" >&2
    die "the probe failed under wine: ${out:-no output}"
}
echo "$out"
run_logged "waiting for the wineserver" timeout 120 "$wineserver" -w

echo "$want" >"$stamp"
step "wine prefix: $prefix is ready"
