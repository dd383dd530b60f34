#!/usr/bin/env python3
"""PyTorch side of bench/cpu-forward: the same network (weights and architecture from the
safetensors file percept wrote), the same input, the same thread count, eval mode, no
autograd. Prints "median_ms max_abs_diff max_abs_output" (the difference against percept's
output, and the largest output magnitude, which sets the tolerance).

    pytorch-forward.py WEIGHTS SIZE THREADS PERCEPT_OUTPUT.f32 RUNS

The safetensors reader and the arch-JSON interpreter are tools/percept_torch.py, shared with
the golden fixtures (written independently of the C code)."""
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from percept_torch import read_safetensors, run_arch  # noqa: E402


def main():
    weights, size, threads, percept_out, runs = sys.argv[1:6]
    size, threads, runs = int(size), int(threads), max(3, int(runs))
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    params, meta = read_safetensors(weights)
    arch = json.loads(meta["percept.arch"])
    n = 3 * size * size
    idx = np.arange(n, dtype=np.uint64)
    x = ((idx * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)).astype(np.float64) / 4294967296.0
    x = torch.from_numpy(x.astype(np.float32)).reshape(1, 3, size, size)
    times = []
    with torch.no_grad():
        y = run_arch(arch, params, x, False)  # warm-up
        for _ in range(runs):
            t = time.perf_counter()
            y = run_arch(arch, params, x, False)
            times.append(time.perf_counter() - t)
    ours = np.fromfile(percept_out, dtype=np.float32)
    theirs = y.numpy().ravel()
    if ours.shape != theirs.shape:
        sys.exit(f"output sizes differ: percept {ours.size}, PyTorch {theirs.size}")
    diff = float(np.abs(ours - theirs).max())
    print(f"{statistics.median(times) * 1e3:.3f} {diff:.3e} {float(np.abs(theirs).max()):.3e}")


if __name__ == "__main__":
    main()
