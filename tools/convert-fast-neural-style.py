#!/usr/bin/python3
"""Convert a pytorch/examples fast_neural_style checkpoint to a percept weight file.

    tools/convert-fast-neural-style.py candy.pth candy.safetensors [--fp16]
        [--percept build/trainer/percept] [--description "Candy (pytorch/examples)"]

The checkpoint is a TransformerNet state_dict; percept's Johnson network uses the same
tensor names, so conversion copies tensors. Like the example's own stylize.py, the
deprecated running_mean/running_var entries of its InstanceNorm layers are dropped. The
architecture stored in the file is the one `percept arch johnson` prints, with the 0..255
scaling those networks expect (input ×255 before, output ÷255 after).
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from percept_torch import write_safetensors  # noqa: E402


def johnson_arch(percept, base, blocks):
    out = subprocess.check_output([percept, "arch", "johnson", "--base", str(base),
                                   "--blocks", str(blocks), "--input-255"], text=True)
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="TransformerNet state_dict (.pth / .model)")
    ap.add_argument("output", help="percept weight file to write (.safetensors)")
    ap.add_argument("--fp16", action="store_true", help="store weights as F16 (half the size)")
    ap.add_argument("--percept", default=shutil.which("percept") or "build/trainer/percept",
                    help="the percept command (for the architecture)")
    ap.add_argument("--description", default=None, help="text for percept.description")
    args = ap.parse_args()

    state = torch.load(args.checkpoint, map_location="cpu")
    if not isinstance(state, dict):
        sys.exit(f"{args.checkpoint}: not a state_dict")
    state = {k: v for k, v in state.items()
             if not (k.endswith("running_mean") or k.endswith("running_var"))}
    res = sorted({int(k.split(".")[0][3:]) for k in state if k.startswith("res")})
    if "conv1.conv2d.weight" not in state or not res:
        sys.exit(f"{args.checkpoint}: not a fast_neural_style TransformerNet checkpoint")
    base = state["conv1.conv2d.weight"].shape[0]
    arch = johnson_arch(args.percept, base, len(res))
    dtype = torch.float16 if args.fp16 else torch.float32
    meta = {"percept.arch": json.dumps(arch, separators=(",", ":")), "percept.task": "stylize",
            "percept.version": "converted",
            "percept.description": args.description or f"converted from {Path(args.checkpoint).name}",
            "percept.recipe": "pytorch/examples fast_neural_style (converted, not trained by percept)"}
    write_safetensors(args.output, {k: v.to(dtype) for k, v in state.items()}, meta)
    print(f"wrote {args.output}: {len(state)} tensors, base width {base}, {len(res)} residual blocks")


if __name__ == "__main__":
    main()
