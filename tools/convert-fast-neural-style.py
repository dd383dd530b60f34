#!/usr/bin/python3
"""Convert a pytorch/examples fast_neural_style checkpoint to a percept weight file.

    tools/convert-fast-neural-style.py candy.pth candy.safetensors [--fp16]
        [--description "Candy (pytorch/examples)"] [--percept build/trainer/percept]

The checkpoint is a TransformerNet state_dict (.pth / .model, as the example's
neural_style.py saves it). percept's Johnson network uses the same module names, so
conversion copies tensors. Like the example's stylize.py, the deprecated
running_mean/running_var entries of its InstanceNorm layers (old checkpoints carry them)
are dropped; any other missing, extra or misshapen tensor is an error.

The architecture stored in the file (metadata percept.arch) is built here, node for node
the JSON of percept_arch_johnson(base, blocks, input_255=1): the base width and the number
of residual blocks are read from the checkpoint, and the network works on 0..255 inside
(input x255 before, output /255 after) as those checkpoints expect. With --percept, the JSON
is also asked of `percept arch johnson` and the conversion fails if the two differ.

Needs numpy and torch (Debian: python3-numpy, python3-torch); writes safetensors itself.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path


# ---- the architecture: the same JSON as core/nets/arch-johnson.c ------------------------

def johnson_arch(base=32, blocks=5, input_255=True):
    """docs/arch-format.md JSON (as a dict) of percept_arch_johnson({base, blocks, input_255}).

    Keys and nodes in the C builder's order, attributes it leaves at their defaults left out,
    so json.dumps(..., separators=(",", ":")) gives the C builder's text."""
    nodes = []
    last = ["input"]

    def node(name, op, src=None, **attrs):
        nd = {"name": name, "op": op}
        if src is not None and src != last[0]:
            nd["in"] = list(src) if isinstance(src, tuple) else [src]
        nd.update(attrs)
        nodes.append(nd)
        last[0] = name

    def conv(name, cin, cout, k, stride=1):
        attrs = {"cin": cin, "cout": cout, "k": k}
        if stride != 1:
            attrs["stride"] = stride
        if k // 2:
            attrs["pad"] = k // 2
        attrs["pad_mode"] = "reflect"
        node(name, "conv2d", **attrs)

    def conv_in_relu(conv_name, norm, relu, cin, cout, k, stride=1):
        conv(f"{conv_name}.conv2d", cin, cout, k, stride)
        node(norm, "instance_norm", c=cout)
        if relu:
            node(relu, "relu")

    b = base
    if input_255:
        node("scale_in", "channel_affine", scale=255, shift=0)
    conv_in_relu("conv1", "in1", "relu1", 3, b, 9)
    conv_in_relu("conv2", "in2", "relu2", b, 2 * b, 3, 2)
    conv_in_relu("conv3", "in3", "relu3", 2 * b, 4 * b, 3, 2)
    block_in = "relu3"
    for i in range(1, blocks + 1):
        conv_in_relu(f"res{i}.conv1", f"res{i}.in1", f"res{i}.relu", 4 * b, 4 * b, 3)
        conv_in_relu(f"res{i}.conv2", f"res{i}.in2", None, 4 * b, 4 * b, 3)
        node(f"res{i}.add", "add", (f"res{i}.in2", block_in))  # both inputs, always
        block_in = f"res{i}.add"
    node("deconv1.upsample", "upsample_nearest")
    conv_in_relu("deconv1", "in4", "relu4", 4 * b, 2 * b, 3)
    node("deconv2.upsample", "upsample_nearest")
    conv_in_relu("deconv2", "in5", "relu5", 2 * b, b, 3)
    conv("deconv3.conv2d", b, 3, 9)
    if input_255:
        node("scale_out", "channel_affine", scale=1.0 / 255.0, shift=0)
    return {"format": 1, "name": f"johnson-b{b}-r{blocks}", "input_channels": 3,
            "nodes": nodes}


def arch_params(arch):
    """(name, shape) of every parameter the architecture declares, in node order."""
    out = []
    for nd in arch["nodes"]:
        if nd["op"] == "conv2d":
            out.append((f"{nd['name']}.weight", (nd["cout"], nd["cin"], nd["k"], nd["k"])))
            out.append((f"{nd['name']}.bias", (nd["cout"],)))
        elif nd["op"] == "instance_norm":
            out.append((f"{nd['name']}.weight", (nd["c"],)))
            out.append((f"{nd['name']}.bias", (nd["c"],)))
    return out


def arch_text(arch):
    return json.dumps(arch, separators=(",", ":"))


# ---- safetensors, written by hand ---------------------------------------------------------

def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, numpy array of float32 or float16). Written atomically."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, a in tensors:
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes(order="C")
        header[name] = {"dtype": "F16" if a.dtype.itemsize == 2 else "F32",
                        "shape": list(a.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    out = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent.resolve())
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for blob in blobs:
                f.write(blob)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


def percept_version():
    """PERCEPT_VERSION from the source tree this script belongs to."""
    header = Path(__file__).resolve().parent.parent / "core/include/percept/percept.h"
    try:
        m = re.search(r'#define PERCEPT_VERSION "([^"]+)"', header.read_text())
        return m.group(1) if m else "unknown"
    except OSError:
        return "unknown"


# ---- conversion ---------------------------------------------------------------------------

DEPRECATED = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")


def load_state_dict(path):
    import torch
    open(path, "rb").close()  # a missing or unreadable file is reported as such
    try:
        try:  # weights_only: a checkpoint from the web must not run code when unpickled
            state = torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:  # torch before 1.13 has no weights_only
            state = torch.load(path, map_location="cpu")
    except Exception as e:
        raise ValueError(f"not a PyTorch checkpoint that loads without running code "
                         f"({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError("not a state_dict (a mapping of tensor names to tensors)")
    return {k: v for k, v in state.items() if not DEPRECATED.search(k)}


def convert(state, fp16=False):
    """Returns (arch dict, list of (name, numpy array)) for a TransformerNet state_dict."""
    import numpy as np
    import torch
    w = state.get("conv1.conv2d.weight")
    if not isinstance(w, torch.Tensor) or w.dim() != 4:
        raise ValueError("no conv1.conv2d.weight: not a fast_neural_style TransformerNet")
    base = w.shape[0]
    blocks = 0
    while f"res{blocks + 1}.conv1.conv2d.weight" in state:
        blocks += 1
    arch = johnson_arch(base, blocks, True)
    want = arch_params(arch)
    names = {n for n, _ in want}
    missing = [n for n, _ in want if n not in state]
    extra = sorted(k for k in state if k not in names)
    if missing or extra:
        raise ValueError(f"not a TransformerNet with base width {base} and {blocks} residual "
                         f"blocks: missing {missing[:5]}, unexpected {extra[:5]}")
    tensors = []
    for name, shape in want:
        t = state[name]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            raise ValueError(f"{name}: shape {tuple(getattr(t, 'shape', ()))}, expected {shape}")
        a = t.detach().cpu().to(torch.float32).numpy()
        if fp16:
            with np.errstate(over="ignore"):
                a = a.astype(np.float16)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: values that are not finite"
                             + (" in F16 (too large for half precision)" if fp16 else ""))
        tensors.append((name, np.ascontiguousarray(a)))
    return arch, tensors


def main():
    ap = argparse.ArgumentParser(
        description="Convert a pytorch/examples fast_neural_style checkpoint (TransformerNet "
                    "state_dict) to a percept .safetensors weight file.")
    ap.add_argument("checkpoint", help="TransformerNet state_dict (.pth / .model)")
    ap.add_argument("output", help="percept weight file to write (.safetensors)")
    ap.add_argument("--fp16", action="store_true", help="store weights as F16 (half the size)")
    ap.add_argument("--description", default=None,
                    help="text for percept.description (default: the checkpoint's name)")
    ap.add_argument("--percept", default=None, metavar="PATH",
                    help="a percept command: check the architecture against "
                         "`percept arch johnson` as well")
    args = ap.parse_args()

    try:
        state = load_state_dict(args.checkpoint)
        arch, tensors = convert(state, args.fp16)
    except Exception as e:  # unreadable, not a pickle, not a TransformerNet: say which file
        sys.exit(f"{args.checkpoint}: {e}")
    if args.percept:
        base, blocks = arch["nodes"][1]["cout"], sum(n["op"] == "add" for n in arch["nodes"])
        try:
            out = subprocess.check_output([args.percept, "arch", "johnson", "--base", str(base),
                                           "--blocks", str(blocks), "--input-255"], text=True)
        except (OSError, subprocess.CalledProcessError) as e:
            sys.exit(f"{args.percept}: {e}")
        if json.loads(out) != arch:
            sys.exit(f"the architecture built here differs from `{args.percept} arch johnson`: "
                     "tools/convert-fast-neural-style.py and core/nets/arch-johnson.c disagree")
    meta = {"percept.arch": arch_text(arch), "percept.task": "stylize",
            "percept.version": percept_version(),
            "percept.description": args.description
            or f"{Path(args.checkpoint).stem} (pytorch/examples fast_neural_style, converted)",
            "percept.recipe": "pytorch/examples fast_neural_style (converted, not trained by "
                              "percept)"}
    try:
        write_safetensors(args.output, tensors, meta)
    except OSError as e:
        sys.exit(f"{args.output}: cannot write: {e.strerror or e}")
    n = sum(a.size for _, a in tensors)
    print(f"wrote {args.output}: {len(tensors)} tensors, {n} parameters, base width "
          f"{arch['nodes'][1]['cout']}, {sum(nd['op'] == 'add' for nd in arch['nodes'])} "
          f"residual blocks, {'F16' if args.fp16 else 'F32'}")


if __name__ == "__main__":
    main()
