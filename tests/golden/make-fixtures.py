#!/usr/bin/python3
"""Writes the golden fixtures the C tests compare against: small networks run forward and
backward in PyTorch, saved with their inputs, weights, outputs and gradients.

Run by hand, once, from the repository root after building (it asks `percept arch` for
the architectures our builders make):

    /usr/bin/python3 tests/golden/make-fixtures.py build/trainer/percept

Needs Debian's python3-torch (CPU). The C tests do not need PyTorch.

The networks are evaluated by an interpreter of the architecture JSON written here with
torch.nn.functional, independently of the C code; the Johnson fixture additionally uses
pytorch/examples' TransformerNet module structure, so its state_dict names are the real ones.
"""
import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tools"))
from percept_torch import random_params, run_arch, write_safetensors  # noqa: E402


# ---- pytorch/examples fast_neural_style TransformerNet (reduced width) ---------------------

class ConvLayer(torch.nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.reflection_pad = torch.nn.ReflectionPad2d(k // 2)
        self.conv2d = torch.nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = ConvLayer(c, c, 3, 1)
        self.in1 = torch.nn.InstanceNorm2d(c, affine=True)
        self.conv2 = ConvLayer(c, c, 3, 1)
        self.in2 = torch.nn.InstanceNorm2d(c, affine=True)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class UpsampleConvLayer(torch.nn.Module):
    def __init__(self, cin, cout, k, stride, upsample=None):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = torch.nn.ReflectionPad2d(k // 2)
        self.conv2d = torch.nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(torch.nn.Module):
    def __init__(self, b, blocks):
        super().__init__()
        self.conv1 = ConvLayer(3, b, 9, 1)
        self.in1 = torch.nn.InstanceNorm2d(b, affine=True)
        self.conv2 = ConvLayer(b, 2 * b, 3, 2)
        self.in2 = torch.nn.InstanceNorm2d(2 * b, affine=True)
        self.conv3 = ConvLayer(2 * b, 4 * b, 3, 2)
        self.in3 = torch.nn.InstanceNorm2d(4 * b, affine=True)
        for i in range(1, blocks + 1):
            setattr(self, f"res{i}", ResidualBlock(4 * b))
        self.blocks = blocks
        self.deconv1 = UpsampleConvLayer(4 * b, 2 * b, 3, 1, upsample=2)
        self.in4 = torch.nn.InstanceNorm2d(2 * b, affine=True)
        self.deconv2 = UpsampleConvLayer(2 * b, b, 3, 1, upsample=2)
        self.in5 = torch.nn.InstanceNorm2d(b, affine=True)
        self.deconv3 = ConvLayer(b, 3, 9, 1)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        for i in range(1, self.blocks + 1):
            y = getattr(self, f"res{i}")(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def reachable(arch):
    """Names of the nodes the output depends on (a dead node would go untested)."""
    nodes, prev, ins = arch["nodes"], "input", {}
    for nd in nodes:
        ins[nd["name"]] = nd.get("in", [prev])
        prev = nd["name"]
    seen, todo = set(), [arch.get("output", prev)]
    while todo:
        n = todo.pop()
        if n != "input" and n not in seen:
            seen.add(n)
            todo += ins[n]
    return seen


def fixture(path, arch, params, x, training, gen, note):
    dead = [nd["name"] for nd in arch["nodes"] if nd["name"] not in reachable(arch)]
    assert not dead, f"{path.name}: nodes not reaching the output: {dead}"
    x = x.clone().requires_grad_(True)
    before = {k: v.detach().clone() for k, v in params.items()}
    y = run_arch(arch, params, x, training)
    dout = torch.randn(y.shape, generator=gen)
    (y * dout).sum().backward()
    tensors = dict(before)
    tensors.update({"golden.input": x.detach(), "golden.output": y.detach(), "golden.dout": dout,
                    "golden.din": x.grad})
    for k, v in params.items():
        if v.requires_grad:
            tensors[f"golden.grad.{k}"] = v.grad
        elif training:
            tensors[f"golden.after.{k}"] = v.detach()
    meta = {"percept.arch": json.dumps(arch), "golden.mode": "train" if training else "eval",
            "golden.note": note, "golden.torch": torch.__version__}
    write_safetensors(path, tensors, meta)
    live = (x.grad != 0).float().mean().item()
    print(f"{path.name}: output {tuple(y.shape)}, {sum(t.numel() for t in tensors.values())} values, "
          f"{100 * live:.0f}% of d input nonzero")


def loss_fixture(path):
    """Values and input gradients of the losses of core/losses, on random tensors."""
    gen = torch.Generator().manual_seed(99)
    x = torch.rand((2, 3, 9, 11), generator=gen)
    y = torch.rand((2, 3, 9, 11), generator=gen)
    f = torch.randn((2, 5, 6, 7), generator=gen)
    style = torch.randn((1, 5, 8, 5), generator=gen)  # another size: only Grams meet
    mu, logvar = torch.randn((2, 6), generator=gen), 0.5 * torch.randn((2, 6), generator=gen)
    real, fake = 3 * torch.randn(8, generator=gen), 3 * torch.randn(8, generator=gen)

    def gram(t):
        n, c, h, w = t.shape
        psi = t.reshape(n, c, h * w)
        return psi @ psi.transpose(1, 2) / (c * h * w)

    def tv(t):
        return (((t[:, :, :, 1:] - t[:, :, :, :-1]) ** 2).sum()
                + ((t[:, :, 1:, :] - t[:, :, :-1, :]) ** 2).sum()) / t.shape[0]

    ones, zeros = torch.ones(8), torch.zeros(8)
    cases = {
        "mse": ([x], lambda a: F.mse_loss(a, y)),
        "l1": ([x], lambda a: F.l1_loss(a, y)),
        "tv": ([x], tv),
        "style": ([f], lambda a: ((gram(a) - gram(style)) ** 2).sum() / a.shape[0]),
        "kl": ([mu, logvar], lambda m, v: -0.5 * (1 + v - m ** 2 - v.exp()).sum() / m.shape[0]),
        "adv_d": ([real, fake], lambda r, q: F.binary_cross_entropy_with_logits(r, ones)
                  + F.binary_cross_entropy_with_logits(q, zeros)),
        "adv_g": ([fake], lambda q: F.binary_cross_entropy_with_logits(q, ones)),
    }
    tensors = {"x": x, "y": y, "f": f, "style": style, "style_gram": gram(style)[0], "mu": mu,
               "logvar": logvar, "real": real, "fake": fake, "gram.f": gram(f)}
    for name, (inputs, fn) in cases.items():
        leaves = [t.clone().requires_grad_(True) for t in inputs]
        value = fn(*leaves)
        value.backward()
        tensors[f"value.{name}"] = value.detach().reshape(1)
        for i, leaf in enumerate(leaves):
            tensors[f"grad.{name}.{i}"] = leaf.grad
    write_safetensors(path, tensors, {"golden.note": "losses of core/losses", "golden.torch": torch.__version__})
    print(f"{path.name}: {len(cases)} losses")


def vgg_loss_fixture(path):
    """Feature and style losses through VGG-16 to relu1_2 (random weights, torchvision names,
    plus a classifier tensor a loss network must ignore), with input gradients."""
    gen = torch.Generator().manual_seed(7)
    w0, b0 = 0.2 * torch.randn((64, 3, 3, 3), generator=gen), 0.1 * torch.randn(64, generator=gen)
    w2, b2 = 0.05 * torch.randn((64, 64, 3, 3), generator=gen), 0.1 * torch.randn(64, generator=gen)
    x = torch.rand((2, 3, 12, 10), generator=gen)
    content = torch.rand((2, 3, 12, 10), generator=gen)
    style = torch.rand((1, 3, 14, 16), generator=gen)
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]

    def feats(t):
        r1 = F.relu(F.conv2d((t - mean) / std, w0, b0, padding=1))
        return r1, F.relu(F.conv2d(r1, w2, b2, padding=1))

    def gram(t):
        n, c, h, w = t.shape
        psi = t.reshape(n, c, h * w)
        return psi @ psi.transpose(1, 2) / (c * h * w)

    xf = x.clone().requires_grad_(True)
    feat = F.mse_loss(feats(xf)[1], feats(content)[1])
    feat.backward()
    xs = x.clone().requires_grad_(True)
    style_value = sum(((gram(a) - gram(b)) ** 2).sum() / a.shape[0]
                      for a, b in zip(feats(xs), feats(style)))
    style_value.backward()
    tensors = {"features.0.weight": w0, "features.0.bias": b0, "features.2.weight": w2,
               "features.2.bias": b2, "classifier.0.weight": torch.randn((4, 4), generator=gen),
               "golden.x": x, "golden.content": content, "golden.style": style,
               "golden.value.feat": feat.detach().reshape(1), "golden.grad.feat": xf.grad,
               "golden.value.style": style_value.detach().reshape(1), "golden.grad.style": xs.grad}
    write_safetensors(path, tensors, {"golden.note": "VGG-16 to relu1_2 feature/style losses"})
    print(f"{path.name}: feat {feat.item():.6g}, style {style_value.item():.6g}")


def ssim_fixture(path):
    """SSIM by scikit-image (Debian's python3-skimage) on crops of real photographs: the
    astronaut, a blurred and noisy version of it, its negative (negative SSIM), a constant."""
    import numpy as np
    from scipy import ndimage
    from skimage import data
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(5)
    a = data.astronaut()[100:148, 180:244].astype(np.float32) / 255  # 48×64×3
    b = ndimage.gaussian_filter(a, (1.2, 1.2, 0)) + rng.normal(0, 0.05, a.shape).astype(np.float32)
    b = np.clip(b, 0, 1).astype(np.float32)
    # the test makes the negative and the constant pair itself from x
    pairs = {"noisy": (a, b), "negative": (a, 1 - a), "constant": (np.full_like(a, 0.5), np.full_like(a, 0.5))}
    tensors = {"x": torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None],
               "y": torch.from_numpy(np.ascontiguousarray(b.transpose(2, 0, 1)))[None]}
    for name, (x, y) in pairs.items():
        v = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                  data_range=1, channel_axis=2)
        tensors[f"ssim.{name}"] = torch.tensor([v], dtype=torch.float32)
        print(f"{path.name}: {name} SSIM {v:.6f}")
    write_safetensors(path, tensors, {"golden.note": "scikit-image structural_similarity, Gaussian σ 1.5"})


def ms_ssim_reference(X, Y, data_range=1.0, size=11, sigma=1.5, K=(0.01, 0.03),
                      weights=(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)):
    """MS-SSIM exactly as pytorch-msssim (not on Debian) defines it, reimplemented here."""
    coords = torch.arange(size, dtype=X.dtype) - size // 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    win = (g / g.sum()).reshape(1, 1, 1, size).repeat(X.shape[1], 1, 1, 1)

    def gfilter(t):
        for i in range(2):
            t = F.conv2d(t, win.transpose(2 + i, -1), groups=t.shape[1])
        return t

    def ssim(X, Y):
        c1, c2 = (K[0] * data_range) ** 2, (K[1] * data_range) ** 2
        mu1, mu2 = gfilter(X), gfilter(Y)
        s1, s2 = gfilter(X * X) - mu1 ** 2, gfilter(Y * Y) - mu2 ** 2
        s12 = gfilter(X * Y) - mu1 * mu2
        cs_map = (2 * s12 + c2) / (s1 + s2 + c2)
        ssim_map = (2 * mu1 * mu2 + c1) / (mu1 ** 2 + mu2 ** 2 + c1) * cs_map
        return ssim_map.flatten(2).mean(-1), cs_map.flatten(2).mean(-1)

    mcs = []
    for i in range(len(weights)):
        s, cs = ssim(X, Y)
        if i < len(weights) - 1:
            mcs.append(torch.relu(cs))
            pad = [d % 2 for d in X.shape[2:]]
            X, Y = F.avg_pool2d(X, 2, padding=pad), F.avg_pool2d(Y, 2, padding=pad)
    stack = torch.stack(mcs + [torch.relu(s)], 0)
    return torch.prod(stack ** torch.tensor(weights, dtype=X.dtype).view(-1, 1, 1), 0).mean()


def ms_ssim_fixture(path):
    """MS-SSIM on two channels of a 168×172 photograph crop (stored F16) and a version of it
    the C test rebuilds exactly: y = 0.75 x + 0.125 + 0.015625 ((7 i) mod 5)."""
    import numpy as np
    from skimage import data
    a = data.astronaut()[60:228, 150:322, :2].astype(np.float32) / 255
    x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].half().float()
    i = torch.arange(x.numel()).reshape(x.shape)
    y = 0.75 * x + 0.125 + 0.015625 * ((7 * i) % 5).float()
    xg = x.clone().requires_grad_(True)
    v = ms_ssim_reference(xg, y)
    v.backward()
    # the gradient at 64 spread elements (index 907 j mod n), and its total magnitude
    idx = (torch.arange(64) * 907) % x.numel()
    write_safetensors(path, {"x": x.half(), "ms_ssim": v.detach().reshape(1),
                             "grad_sample": xg.grad.flatten()[idx],
                             "grad_sum_abs": xg.grad.abs().sum().reshape(1)},
                      {"golden.note": "MS-SSIM as pytorch-msssim defines it"})
    print(f"{path.name}: MS-SSIM {v.item():.6f}")


def percept_arch(percept, *args):
    return json.loads(subprocess.check_output([percept, "arch", *args], text=True))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-fixtures.py PATH/TO/percept")
    percept = sys.argv[1]
    loss_fixture(HERE / "losses.safetensors")
    vgg_loss_fixture(HERE / "vgg-loss.safetensors")
    ssim_fixture(HERE / "ssim.safetensors")
    ms_ssim_fixture(HERE / "ms-ssim.safetensors")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(1234)

    # (a) Johnson TransformerNet, base 4, two residual blocks: the real module structure
    net = TransformerNet(4, 2)
    with torch.no_grad():
        for name, t in net.named_parameters():
            if name.startswith("in") or ".in" in name:
                t.copy_((1 if name.endswith("weight") else 0) + 0.2 * torch.randn(t.shape, generator=gen))
    arch = percept_arch(percept, "johnson", "--base", "4", "--blocks", "2")
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.state_dict().items()}
    x = torch.rand((1, 3, 24, 20), generator=gen)
    with torch.no_grad():  # the interpreter must agree with the module itself
        assert torch.allclose(net(x), run_arch(arch, params, x, False), atol=1e-5)
    fixture(HERE / "johnson.safetensors", arch, params, x, False, gen,
            "pytorch/examples TransformerNet, base 4, 2 residual blocks")

    # (b) Johnson SR x4, 8 channels, 1 block, batch norm in eval mode
    arch = percept_arch(percept, "sr", "--scale", "4", "--channels", "8", "--blocks", "1")
    fixture(HERE / "sr4.safetensors", arch, random_params(arch, gen),
            torch.rand((1, 3, 10, 12), generator=gen), False, gen, "SR x4 (Johnson), eval batch norm")

    # (c) DeePSiM discriminator as the paper sizes it for 64x64 (first conv 7x7 stride 2, last
    # map 4x4), width 2, eval mode (dropout off); a non-square batch, zero-centred so that no
    # first-layer channel is dead. (Stride 4 would need 111+ pixels: vgg-like has a 7x7/4 conv.)
    arch = percept_arch(percept, "discriminator", "--size", "64", "--base", "2")
    fixture(HERE / "discriminator.safetensors", arch, random_params(arch, gen),
            torch.rand((2, 3, 60, 64), generator=gen) - 0.5, False, gen,
            "DeePSiM discriminator for 64x64, width 2")

    # (d) a VGG-like stack exercising the remaining ops and non-default attributes (a 7x7
    # stride-4 conv whose windows do not tile the input, conv without bias, instance norm
    # without affine, output_pad, padded max pool on signed values, batch norm eps and
    # momentum), batch norm with batch statistics; every node reaches the output
    arch = {"format": 1, "name": "vgg-like", "input_channels": 3, "nodes": [
        {"name": "normalize", "op": "channel_affine", "scale": [4.37, 4.46, 4.44], "shift": [-2.12, -2.04, -1.8]},
        {"name": "features.0", "op": "conv2d", "cin": 3, "cout": 6, "k": 3, "pad": 1},
        {"name": "features.1", "op": "relu"},
        {"name": "features.2", "op": "max_pool", "k": 2},
        {"name": "mp", "op": "max_pool", "in": ["features.0"], "k": 3, "stride": 2, "pad": 1},
        {"name": "merge", "op": "add", "in": ["features.2", "mp"]},
        {"name": "features.3", "op": "conv2d", "cin": 6, "cout": 8, "k": 3, "pad": 1, "bias": False},
        {"name": "bn", "op": "batch_norm", "c": 8, "eps": 1e-3, "momentum": 0.3},
        {"name": "act", "op": "leaky_relu", "alpha": 0.2},
        {"name": "pool", "op": "avg_pool", "k": 3, "stride": 2, "pad": 1},
        {"name": "s4", "op": "conv2d", "in": ["normalize"], "cin": 3, "cout": 2, "k": 7, "stride": 4, "pad": 3},
        {"name": "pools", "op": "concat", "in": ["pool", "s4"]},
        {"name": "up", "op": "conv_transpose2d", "cin": 10, "cout": 8, "k": 4, "pad": 1},
        {"name": "shuffle", "op": "pixel_shuffle", "r": 2},
        {"name": "gate", "op": "sigmoid"},
        {"name": "both", "op": "concat", "in": ["gate", "features.1"]},
        {"name": "mix", "op": "conv2d", "cin": 8, "cout": 4, "k": 5, "stride": 2, "pad": 2, "pad_mode": "reflect"},
        {"name": "inorm", "op": "instance_norm", "c": 4, "affine": False},
        {"name": "squash", "op": "tanh"},
        {"name": "gap", "op": "global_avg_pool"},
        {"name": "fc", "op": "linear", "fin": 4, "fout": 16},
        {"name": "grid", "op": "reshape", "c": 1, "h": 4, "w": 4},
        {"name": "up2", "op": "upsample_nearest", "factor": 2},
        {"name": "deconv", "op": "conv_transpose2d", "cin": 1, "cout": 2, "k": 3, "stride": 2, "pad": 1,
         "output_pad": 1, "bias": False},
        {"name": "out", "op": "scaled_tanh", "scale": 2.0, "shift": 0.25},
    ]}
    fixture(HERE / "vgg-like.safetensors", arch, random_params(arch, gen),
            torch.rand((2, 3, 16, 16), generator=gen), True, gen,
            "VGG-like stack, batch norm with batch statistics")


if __name__ == "__main__":
    main()
