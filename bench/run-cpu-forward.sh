#!/usr/bin/env bash
# Records a CPU forward benchmark run in bench/results/cpu-forward-DATE.md: the machine,
# the OpenBLAS kernel that ran and the table bench/cpu-forward prints. OPENBLAS_CORETYPE
# and OPENBLAS_L2_SIZE are unset together for this command only (tests keep them).
set -euo pipefail
cd "$(dirname "$0")/.."
ninja -C build bench/cpu-forward >/dev/null
out="bench/results/cpu-forward-$(date +%F).md"
{
    echo "# CPU forward benchmark, $(date +%F)"
    echo
    echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
    echo "- commit: $(git describe --always --dirty)"
    echo "- command: \`bench/run-cpu-forward.sh\` (\`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE build/bench/cpu-forward --threads 2 $*\`)"
    echo "- PyTorch: Debian python3-torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo absent), same weights, input and threads"
    echo
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE build/bench/cpu-forward --threads 2 "$@"
} | tee "$out"
echo "written: $out"
