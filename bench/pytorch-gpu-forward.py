#!/usr/bin/env python3
"""PyTorch side of bench/gpu-forward: the network percept wrote (weights and architecture
from its safetensors file, run by tools/percept_torch.py), batch 1, on the GPU, in each
of the modes the issue names, so the peer is PyTorch at its best on this machine:
fp32 (no TF32), tf32, fp16 with channels-last, and fp16 channels-last replayed as a CUDA
graph. Prints one line per mode: "MODE median_ms max_abs_diff" (difference against
percept's output, written by the benchmark), or "MODE failed REASON".

    pytorch-gpu-forward.py WEIGHTS SIZE RUNS PERCEPT_OUTPUT.f32"""
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from percept_torch import read_safetensors, run_arch  # noqa: E402


def timed(fn, runs):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    weights, size, runs, percept_out = sys.argv[1:5]
    size, runs = int(size), max(3, int(runs))
    params, meta = read_safetensors(weights)
    arch = json.loads(meta["percept.arch"])
    n = 3 * size * size
    idx = np.arange(n, dtype=np.uint64)
    x = ((idx * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)).astype(np.float64) / 4294967296.0
    x = torch.from_numpy(x.astype(np.float32)).reshape(1, 3, size, size).cuda()
    ref = torch.from_numpy(np.fromfile(percept_out, dtype=np.float32)).cuda()
    gpu = {k: v.cuda() for k, v in params.items()}
    half = {k: (v.half().contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v.half())
            for k, v in gpu.items()}
    xh = x.half().contiguous(memory_format=torch.channels_last)

    def report(mode, fn, out):
        try:
            with torch.no_grad():
                ms = timed(fn, runs)
                y = out()
            diff = (y.float().flatten() - ref).abs().max().item()
            print(f"{mode} {ms:.3f} {diff:.3g}", flush=True)
        except Exception as e:  # a mode this machine cannot run is reported, not fatal
            print(f"{mode} failed {type(e).__name__}: {str(e).splitlines()[0][:80]}", flush=True)

    last = {}

    def run(p, inp):
        def f():
            last["y"] = run_arch(arch, p, inp, False)
        return f

    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    report("fp32", run(gpu, x), lambda: last["y"])
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    report("tf32", run(gpu, x), lambda: last["y"])
    report("fp16-nhwc", run(half, xh), lambda: last["y"])
    try:
        with torch.no_grad():
            for _ in range(3):  # warm-up on a side stream, as torch.cuda.graphs asks
                run(half, xh)()
            torch.cuda.synchronize()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                run(half, xh)()
        report("fp16-nhwc-graph", g.replay, lambda: last["y"])
    except Exception as e:
        print(f"fp16-nhwc-graph failed {type(e).__name__}: {str(e).splitlines()[0][:80]}")


if __name__ == "__main__":
    main()
