#!/usr/bin/env bash
# Records a CPU forward benchmark run in bench/results/cpu-forward-DATE.md: the machine,
# the OpenBLAS kernel that ran, the commit and the table bench/cpu-forward prints.
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset together for the benchmark only (the
# tests keep them); 2 threads, as the machines this is recorded on have 2 cores.
#
# The benchmark re-measures the sgemm floor between cases and compares it with one thread's
# rate; when it moved, or 2 threads did not run twice as fast as one, by more than 10% (its
# "busy:" line: someone else was using the machine), the run is repeated, up to RETRIES times
# (3), and the quietest attempt is kept.
#
#   bench/run-cpu-forward.sh [cpu-forward options, e.g. --per-layer]
#   BUILD=/tmp/build-bench bench/run-cpu-forward.sh      # another build directory
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
retries="${RETRIES:-3}"
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" bench/cpu-forward >/dev/null
# PERCEPT_CPU_TILES=avx2 (the direct path's AVX2 tiles on an AVX-512 machine) records
# beside the default run, not over it
out="bench/results/cpu-forward-$(date +%F)${PERCEPT_CPU_TILES:+-$PERCEPT_CPU_TILES}.md"
[ ! -e "$out" ] || out="${out%.md}-$(date +%H%M).md" # a second run that day keeps the first
mkdir -p bench/results
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ninja -C "$build" trainer/percept >/dev/null
source bench/blas-env.sh

best="" best_busy=1000
for attempt in $(seq 1 "$retries"); do
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "attempt $attempt, load average $load" >&2
    rc=0
    env "${blas_env[@]}" "$build/bench/cpu-forward" --threads 2 "$@" \
        > "$work/run$attempt.md" || rc=$?
    [ $rc -eq 0 ] || { cat "$work/run$attempt.md"; echo "cpu-forward failed ($rc)" >&2; exit $rc; }
    echo "$load" > "$work/load$attempt"
    busy="$(sed -n 's/^busy: \([0-9]*\)%.*/\1/p' "$work/run$attempt.md")"
    echo "busy ${busy}%" >&2
    if [ "${busy:-1000}" -lt "$best_busy" ]; then
        best=$attempt best_busy=${busy:-1000}
    fi
    [ "$best_busy" -gt 10 ] || break
done

{
    echo "# CPU forward benchmark, $(date +%F)"
    echo
    echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average before the run: $(cat "$work/load$best")"
    echo "- commit: $(git describe --always --dirty)"
    echo "- command: \`bench/run-cpu-forward.sh $*\` (\`env ${blas_env[*]} $build/bench/cpu-forward --threads 2 $*\`), attempt $best of $attempt"
    [ -z "$blas_note" ] || echo "- BLAS kernel: $blas_note"
    echo "- PyTorch: ${PERCEPT_PYTHON:-/usr/bin/python3} torch $("${PERCEPT_PYTHON:-/usr/bin/python3}" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo absent), same weights, input and threads"
    echo
    cat "$work/run$best.md"
} > "$work/result.md"
chmod 644 "$work/result.md"
mv "$work/result.md" "$out"
cat "$out"
echo "written: $out" >&2
