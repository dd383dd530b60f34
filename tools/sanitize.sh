#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan/.
# Run before every stop (CI runs the plain suite; this one is slower).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build-asan/build.ninja ]; then
    meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dcuda=disabled \
        --buildtype=debugoptimized >/dev/null
fi
ninja -C build-asan
# (The GIMP suite is left out: gimp-console is not instrumented, and with the runtimes
# preloaded into it and every plug-in it runs too slowly to finish; the plug-in's GEGL side
# is the operations', which the gegl suite covers.)
# Leaks are reported too and UBSan findings fail the run — except leak reports from the
# tests that run GEGL (suite 'gegl'): GEGL, babl and their plugins keep allocations until exit
# and unload the plugins, which LeakSanitizer reports without a usable stack.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    meson test -C build-asan --print-errorlogs --timeout-multiplier 4 --no-suite gegl \
    --no-suite gimp "$@"
# the gegl command loads the sanitized module: it needs the runtimes preloaded
export PERCEPT_SANITIZER_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    meson test -C build-asan --print-errorlogs --timeout-multiplier 4 --suite gegl "$@"
