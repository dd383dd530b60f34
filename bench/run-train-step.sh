#!/usr/bin/env bash
# Records the CPU training-step benchmark (bench/train-step.c: Johnson's style recipe at
# 128² and Johnson's ×4 super-resolution recipe, percept against the same step in PyTorch)
# in bench/results/train-step-DATE.md, with the machine, the OpenBLAS kernel, the commit
# and the load. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset together for the benchmark
# only; 2 threads, as the machines this is recorded on have 2 cores.
#
# Where OpenBLAS's own detection picks a generic kernel (a CPU newer than the OpenBLAS, or a
# virtual machine that hides the model: "Prescott"), bench/blas-env.sh names the newest one
# the CPU runs, for percept and PyTorch alike; BENCH_CORETYPE=NAME names one regardless.
#
#   bench/run-train-step.sh [train-step options, e.g. --steps 9]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" bench/train-step trainer/percept >/dev/null
source bench/blas-env.sh
out="bench/results/train-step-$(date +%F).md"
mkdir -p bench/results
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
load="$(cut -d' ' -f1-3 /proc/loadavg)"
env "${blas_env[@]}" OPENBLAS_VERBOSE=2 "$build/bench/train-step" \
    --threads 2 "$@" > "$work/table.md" 2> "$work/stderr" || { cat "$work/stderr"; exit 1; }
kernel="$(sed -n 's/^Core: *//p' "$work/stderr" | head -1)"
python="${PERCEPT_PYTHON:-/usr/bin/python3}"
{
    echo "# CPU training-step benchmark, $(date +%F)"
    echo
    echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average before the run: $load"
    echo "- OpenBLAS kernel: ${kernel:-not reported}${blas_note:+ ($blas_note)}"
    echo "- commit: $(git describe --always --dirty)"
    echo "- command: \`bench/run-train-step.sh $*\` (\`env ${blas_env[*]} $build/bench/train-step --threads 2 $*\`)"
    echo "- PyTorch: $python torch $("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo absent), same architecture, initial weights, loss network, batch, Adam and threads; median of the timed steps after one warm-up step; the first-step losses agreeing shows both compute the same step"
    echo
    cat "$work/table.md"
} > "$out"
cat "$out"
echo "written: $out" >&2
