#!/usr/bin/python3
"""How many of a network's ReLU channels ever fire: a dead channel costs its share of every
convolution and contributes nothing. For each weight file, each ReLU node's channel count and
how many of its channels are positive at fewer than 0.1% of the pixels over the evaluation
photos (data/eval, never trained on; tools/eval-data.sh makes them). An upscaler sees each
photo degraded as its recipe trained it (`percept degrade` with the recipe's `degrade`).

    /usr/bin/python3 tools/relu-usage.py presets/upscale-x4.safetensors [more.safetensors ...]

Needs Debian's python3-torch and python3-pil (PyTorch runs the network through
tools/percept_torch.py, an interpreter independent of the C code) and the percept command
(PERCEPT, default build/trainer/percept).
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import percept_torch  # noqa: E402

DEAD_FRACTION = 1e-3


def photos(root):
    paths = sorted(glob.glob(os.path.join(root, "*.png")))
    if not paths:
        sys.exit(f"relu-usage: no photos in {root} (run tools/eval-data.sh)")
    return paths


def network_input(path, scale, degrade, tmp):
    if degrade != "none":
        small = os.path.join(tmp, "small.png")
        percept = os.environ.get("PERCEPT", "build/trainer/percept")
        subprocess.run([percept, "degrade", path, small, "--degrade", degrade, "--scale",
                        str(scale)], check=True)
        path = small
    x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2  # even sides, for restore-half
    return x[:h, :w].permute(2, 0, 1)[None]


def recipe_degrade(meta):
    m = re.search(r"^degrade\s*=\s*(\S+)", meta.get("percept.recipe", ""), re.M)
    return m.group(1) if m else "bicubic"


def usage(weights, eval_dir):
    params, meta = percept_torch.read_safetensors(weights)
    arch = json.loads(meta["percept.arch"])
    scale = int(meta.get("percept.scale", "1"))
    relus = [nd["name"] for nd in arch["nodes"] if nd["op"] == "relu"]
    active, pixels = None, 0
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        for path in photos(eval_dir):
            x = network_input(path, scale, recipe_degrade(meta), tmp)
            outs = percept_torch.run_arch(arch, params, x, False, want=relus)
            counts = [(o > 0).sum((0, 2, 3)).double() for o in outs]
            active = counts if active is None else [a + c for a, c in zip(active, counts)]
            pixels += outs[0].shape[2] * outs[0].shape[3]
    print(f"{weights}: {len(photos(eval_dir))} photos")
    print("| ReLU | channels | dead (< 0.1% of pixels) |")
    print("|---|---:|---:|")
    total = dead_total = 0
    for name, a in zip(relus, active):
        dead = int((a / pixels < DEAD_FRACTION).sum())
        print(f"| {name} | {a.numel()} | {dead} |")
        total += a.numel()
        dead_total += dead
    print(f"| all | {total} | {dead_total} ({100.0 * dead_total / max(total, 1):.0f}%) |\n")


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) >= 2 else 2
    eval_dir = os.environ.get("PERCEPT_EVAL_DIR", "data/eval")
    for weights in sys.argv[1:]:
        usage(weights, eval_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
