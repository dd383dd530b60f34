#!/usr/bin/env bash
# tools/convert-fast-neural-style.py end to end: a random pytorch/examples TransformerNet
# checkpoint (with the deprecated instance-norm running stats old checkpoints carry) is
# converted, run by percept on 0..1 input, and compared with PyTorch on 0..255 input.
# Skips (77) where Debian's python3-torch is not installed.
set -eu
percept="$1" run_raw="$2"
top="$(cd "$(dirname "$0")/.." && pwd)"
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "no python3-torch: skipped"; exit 77; }
tmp="${PERCEPT_TEST_TMP:-/tmp}/test-convert.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$top" "$tmp" <<'PY'
import importlib.util, sys, torch
top, tmp = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("mf", f"{top}/tests/golden/make-fixtures.py")
mf = importlib.util.module_from_spec(spec); spec.loader.exec_module(mf)
torch.manual_seed(3)
net = mf.TransformerNet(8, 3)
with torch.no_grad():
    for name, t in net.named_parameters():
        t.add_(0.05 * torch.randn(t.shape))
sd = net.state_dict()
sd["in1.running_mean"] = torch.zeros(8)
sd["in1.running_var"] = torch.ones(8)
torch.save(sd, f"{tmp}/net.pth")
x = torch.rand(1, 3, 36, 28)
with torch.no_grad():
    y = net(x * 255) / 255
x.numpy().tofile(f"{tmp}/in.f32")
y.numpy().tofile(f"{tmp}/want.f32")
PY
/usr/bin/python3 "$top/tools/convert-fast-neural-style.py" --percept "$percept" "$tmp/net.pth" "$tmp/net.safetensors"
"$run_raw" "$tmp/net.safetensors" 1 3 36 28 "$tmp/in.f32" "$tmp/got.f32"
/usr/bin/python3 - "$tmp" <<'PY'
import sys, numpy as np
tmp = sys.argv[1]
got, want = np.fromfile(f"{tmp}/got.f32", np.float32), np.fromfile(f"{tmp}/want.f32", np.float32)
err = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
print(f"converted network vs PyTorch: max abs error {err:.3g} (values up to {np.abs(want).max():.3g})")
sys.exit(0 if err <= 1e-4 * np.abs(want).max() + 1e-6 else 1)
PY
