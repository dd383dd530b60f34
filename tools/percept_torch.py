"""PyTorch twin of percept's network format, for golden fixtures and benchmarks.

run_arch() evaluates an architecture JSON (docs/arch-format.md) with torch.nn.functional,
written independently of the C code; read/write_safetensors() handle F32/F16 files without
the safetensors package (Debian has none).
"""
import json
import struct

import numpy as np
import torch
import torch.nn.functional as F


# ---- an interpreter of docs/arch-format.md in torch.nn.functional ------------------------

def run_arch(arch, params, x, training, want=None):
    """params: dict name -> tensor (requires_grad for trainable ones). Returns the output, or
    with want (node names) the list of those nodes' outputs."""
    vals = {"input": x}
    prev = "input"
    for nd in arch["nodes"]:
        ins = [vals[n] for n in nd.get("in", [prev])]
        a = ins[0]
        op, name = nd["op"], nd["name"]
        p = lambda s: params.get(f"{name}.{s}")
        if op == "conv2d":
            pad = nd.get("pad", 0)
            if nd.get("pad_mode") == "reflect" and pad:
                a = F.pad(a, (pad, pad, pad, pad), mode="reflect")
                pad = 0
            y = F.conv2d(a, p("weight"), p("bias"), nd.get("stride", 1), pad)
        elif op == "conv_transpose2d":
            y = F.conv_transpose2d(a, p("weight"), p("bias"), nd.get("stride", 2), nd.get("pad", 0),
                                   nd.get("output_pad", 0))
        elif op == "upsample_nearest":
            y = F.interpolate(a, scale_factor=nd.get("factor", 2), mode="nearest")
        elif op == "pixel_shuffle":
            y = F.pixel_shuffle(a, nd["r"])
        elif op == "instance_norm":
            y = F.instance_norm(a, weight=p("weight"), bias=p("bias"), eps=nd.get("eps", 1e-5))
        elif op == "batch_norm":
            y = F.batch_norm(a, p("running_mean"), p("running_var"), p("weight"), p("bias"),
                             training=training, momentum=nd.get("momentum", 0.1), eps=nd.get("eps", 1e-5))
        elif op == "relu":
            y = F.relu(a)
        elif op == "leaky_relu":
            y = F.leaky_relu(a, nd.get("alpha", 0.01))
        elif op == "tanh":
            y = torch.tanh(a)
        elif op == "scaled_tanh":
            y = nd.get("scale", 0.5) * torch.tanh(a) + nd.get("shift", 0.5)
        elif op == "sigmoid":
            y = torch.sigmoid(a)
        elif op == "cos":
            y = nd.get("scale", 1.0) * torch.cos(a)
        elif op == "add":
            y = ins[0] + ins[1]
        elif op == "concat":
            y = torch.cat(ins, 1)
        elif op == "avg_pool":
            y = F.avg_pool2d(a, nd["k"], nd.get("stride", nd["k"]), nd.get("pad", 0))
        elif op == "max_pool":
            y = F.max_pool2d(a, nd["k"], nd.get("stride", nd["k"]), nd.get("pad", 0))
        elif op == "global_avg_pool":
            y = a.mean((2, 3), keepdim=True)
        elif op == "linear":
            y = F.linear(a.flatten(1), p("weight"), p("bias"))[:, :, None, None]
        elif op == "reshape":
            y = a.reshape(a.shape[0], nd["c"], nd["h"], nd["w"])
        elif op == "channel_affine":
            s = torch.tensor(nd["scale"] if isinstance(nd["scale"], list) else [nd["scale"]],
                             device=a.device, dtype=a.dtype)
            t = torch.tensor(nd["shift"] if isinstance(nd["shift"], list) else [nd["shift"]],
                             device=a.device, dtype=a.dtype)
            y = a * s[None, :, None, None] + t[None, :, None, None]
        elif op == "dropout":
            assert not training, "fixtures use dropout in eval mode only"
            y = a
        else:
            raise ValueError(f"no fixture support for op {op}")
        vals[name] = y
        prev = name
    if want is not None:
        return [vals[n] for n in want]
    return vals[arch.get("output", prev)]


def param_shapes(arch):
    """(name, shape, trainable) for each parameter the architecture declares."""
    out = []
    for nd in arch["nodes"]:
        n, op = nd["name"], nd["op"]
        if op in ("conv2d", "conv_transpose2d"):
            cin, cout, k = nd["cin"], nd["cout"], nd["k"]
            out.append((f"{n}.weight", (cout, cin, k, k) if op == "conv2d" else (cin, cout, k, k), True))
            if nd.get("bias", True):
                out.append((f"{n}.bias", (cout,), True))
        elif op == "linear":
            out.append((f"{n}.weight", (nd["fout"], nd["fin"]), True))
            if nd.get("bias", True):
                out.append((f"{n}.bias", (nd["fout"],), True))
        elif op in ("instance_norm", "batch_norm"):
            if nd.get("affine", True):
                out += [(f"{n}.weight", (nd["c"],), True), (f"{n}.bias", (nd["c"],), True)]
            if op == "batch_norm":
                out += [(f"{n}.running_mean", (nd["c"],), False), (f"{n}.running_var", (nd["c"],), False)]
    return out


def random_params(arch, gen):
    params = {}
    for name, shape, trainable in param_shapes(arch):
        if name.endswith("running_var"):
            t = 0.5 + torch.rand(shape, generator=gen)
        elif name.endswith("running_mean"):
            t = 0.2 * torch.randn(shape, generator=gen)
        elif len(shape) == 1 and name.endswith("weight"):
            t = 1 + 0.2 * torch.randn(shape, generator=gen)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
            t = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5 * (1 if len(shape) > 1 else 0.1)
        params[name] = t.requires_grad_(trainable)
    return params


# ---- safetensors writer (F32 only) ------------------------------------------------------

def write_safetensors(path, tensors, metadata):
    """F16 tensors are stored as F16, everything else as F32."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        half = t.dtype == torch.float16
        data = t.detach().contiguous().to(torch.float16 if half else torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F16" if half else "F32", "shape": list(t.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    """Returns (dict name -> float32 tensor, metadata dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data, tensors = blob[8 + n:], {}
    for name, e in header.items():
        b, en = e["data_offsets"]
        dt = {"F32": np.float32, "F16": np.float16}[e["dtype"]]
        arr = np.frombuffer(data[b:en], dtype=dt).astype(np.float32).reshape(e["shape"])
        tensors[name] = torch.from_numpy(arr.copy())
    return tensors, meta
