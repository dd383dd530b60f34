#!/usr/bin/env python3
"""The GPU's measured ceilings, for bench/gpu-forward and bench/train-step (--ceilings): dense
matrix products (8192², PyTorch on cuBLAS) in FP32 (no TF32), TF32 and FP16, in TFLOP/s, and a
device-to-device copy of 1 GiB in GB/s (read and write both counted) — the best of 5 runs
after a warm-up each. What percept's kernels could at most reach on this GPU: a benchmark's
time divided by the time its FLOPs and its bytes would take at these rates says how far it is.
Prints one line: fp32:T,tf32:T,fp16:T,copy:G"""
import time

import torch


def best_seconds(f, runs=5):
    f()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(runs):
        torch.cuda.synchronize()
        t = time.perf_counter()
        f()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    n = 8192
    rates = []
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("fp16", torch.float16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        rates.append(f"{name}:{2 * n ** 3 / best_seconds(lambda: a @ b) / 1e12:.1f}")
        del a, b
    x = torch.empty(1 << 28, device="cuda", dtype=torch.float32)
    y = torch.empty_like(x)
    gbs = 2 * x.numel() * 4 / best_seconds(lambda: y.copy_(x)) / 1e9
    print(",".join(rates + [f"copy:{gbs:.0f}"]))


if __name__ == "__main__":
    main()
