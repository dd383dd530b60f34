#!/usr/bin/env python3
"""PyTorch side of bench/train-step: the same training step in PyTorch — the network from
the architecture and initial weights percept wrote, the same batch, the same VGG-16 loss
network weights, the same loss definitions (docs/losses.md: feature MSE, Gram style loss
with G = ψψᵀ/(chw) summed over layers, squared-difference TV, each averaged over the
batch), Adam with the same settings, the same thread count. One VGG-16 pass serves every
loss, as in Johnson et al.'s code. Prints "median_ms first_step_loss".

    pytorch-train-step.py DIR CASE LOSSES BATCH IN_SIDE OUT_SIDE THREADS STEPS"""
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from percept_torch import read_safetensors, run_arch  # noqa: E402

VGG_INDEX = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}


def gram(f):
    n, c, h, w = f.shape
    psi = f.reshape(n, c, h * w)
    return psi @ psi.transpose(1, 2) / (c * h * w)


def main():
    d, case, losses, batch, in_side, out_side, threads, steps = sys.argv[1:9]
    device = sys.argv[9] if len(sys.argv) > 9 else "cpu"
    gpu = device == "cuda"
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    batch, in_side, out_side = int(batch), int(in_side), int(out_side)
    threads, steps = int(threads), int(steps)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    d = Path(d)
    params, meta = read_safetensors(d / f"{case}.safetensors")
    params = {k: v.to(device) for k, v in params.items()}
    arch = json.loads(meta["percept.arch"])
    trainable = [p for k, p in params.items() if "running_" not in k]
    for p in trainable:
        p.requires_grad_(True)
    vgg, vmeta = read_safetensors(d / "vgg16-relu4_3.safetensors")
    vgg = {k: v.to(device) for k, v in vgg.items()}
    vgg_arch = json.loads(vmeta["percept.arch"])
    # the feature loss's own VGG (relu2_2) must be the same weights for one pass to serve
    feat_vgg, _ = read_safetensors(d / "vgg16-relu2_2.safetensors")
    assert all(torch.equal(feat_vgg[k], vgg[k].cpu()) for k in feat_vgg), "VGG weights differ"

    load = lambda name, shape: torch.from_numpy(np.fromfile(d / name, dtype=np.float32)).reshape(shape).to(device)
    x = load(f"{case}.in.f32", (batch, 3, in_side, in_side))
    target = load(f"{case}.target.f32", (batch, 3, out_side, out_side))
    style = load("style.f32", (1, 3, 128, 128))

    terms = []  # (kind, layers, weight)
    for item in losses.split(";"):
        spec, w = item.rsplit("=", 1)
        parts = spec.split(":")
        layers = parts[2].split(",") if len(parts) > 2 else []
        terms.append((parts[0], layers, float(w)))
    layers = sorted({l for _, ls, _ in terms for l in ls}, key=VGG_INDEX.get)
    names = [f"features.{VGG_INDEX[l]}" for l in layers]

    def features(img):
        return dict(zip(layers, run_arch(vgg_arch, vgg, img, False, names)))

    with torch.no_grad():
        style_f = features(style)
        style_gram = {l: gram(f)[0] for l, f in style_f.items()}

    opt = torch.optim.Adam(trainable, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)

    def step():
        opt.zero_grad()
        # the content target's features every step, as training on new batches needs them
        # (and percept computes them)
        with torch.no_grad():
            target_f = features(target)
        y = run_arch(arch, params, x, True)
        f = features(y)
        total = 0
        for kind, ls, w in terms:
            if kind == "feat":
                total = total + w * sum(torch.mean((f[l] - target_f[l]) ** 2) for l in ls)
            elif kind == "style":
                total = total + w * sum(((gram(f[l]) - style_gram[l]) ** 2).sum((1, 2)).mean() for l in ls)
            elif kind == "tv":
                tv = ((y[:, :, 1:, :] - y[:, :, :-1, :]) ** 2).sum() + ((y[:, :, :, 1:] - y[:, :, :, :-1]) ** 2).sum()
                total = total + w * tv / y.shape[0]
            else:
                raise ValueError(kind)
        total.backward()
        opt.step()
        return total

    sync = torch.cuda.synchronize if gpu else (lambda: None)
    first = float(step())  # also the warm-up
    step()
    times = []
    for _ in range(steps):
        sync()
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    print(f"{statistics.median(times) * 1e3:.3f} {first:.9g}")


if __name__ == "__main__":
    main()
