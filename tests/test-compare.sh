#!/usr/bin/env bash
# percept compare on images GEGL loads: identical images, a noisy copy (cross-checked with
# scikit-image where Debian's python3-skimage is installed), JSON output, and the errors.
set -u
percept="$1"
tmp="${PERCEPT_TEST_TMP:-/tmp}/test-compare.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
if "$percept" compare 2>&1 | grep -q "built without GEGL"; then
    echo "percept built without GEGL: skipped"
    exit 77
fi
python3 - "$tmp" <<'PY'
import math, random, sys
tmp = sys.argv[1]
random.seed(1)
def ppm(path, w, h, f):
    with open(path, "wb") as o:
        o.write(b"P6\n%d %d\n255\n" % (w, h))
        o.write(bytes(f(x, y, c) for y in range(h) for x in range(w) for c in range(3)))
base = lambda x, y, c: int(127 + 100 * math.sin(0.21 * x + c) * math.cos(0.13 * y))
ppm(f"{tmp}/a.ppm", 200, 180, base)
ppm(f"{tmp}/b.ppm", 200, 180, lambda x, y, c: max(0, min(255, base(x, y, c) + random.randint(-12, 12))))
ppm(f"{tmp}/small.ppm", 100, 80, base)
PY
. "$(dirname "$0")/expect.sh"
expect identical 0 "SSIM \(gaussian, sigma 1.5\) +1\.000000" -- "$percept" compare "$tmp/a.ppm" "$tmp/a.ppm"
expect identical-psnr 0 "PSNR \(RGB\) +inf dB" -- "$percept" compare "$tmp/a.ppm" "$tmp/a.ppm"
expect small-ms-ssim 0 "MS-SSIM \(5 scales\) +n/a" -- "$percept" compare "$tmp/small.ppm" "$tmp/small.ppm"
expect sizes 1 "differ in size \(200×180 and 100×80\)" -- "$percept" compare "$tmp/a.ppm" "$tmp/small.ppm"
expect missing 1 "nope.png: cannot read" -- "$percept" compare "$tmp/a.ppm" "$tmp/nope.png"
printf 'not an image' > "$tmp/junk.png"
expect junk 1 "junk.png: GEGL could not load" -- "$percept" compare "$tmp/junk.png" "$tmp/a.ppm"
expect one-arg 2 "needs two images" -- "$percept" compare "$tmp/a.ppm"
"$percept" compare --json "$tmp/a.ppm" "$tmp/b.ppm" > "$tmp/out.json"
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3   # Debian's, where python3-skimage lives
if "$py" - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
r = json.load(open(f"{tmp}/out.json"))
assert 25 < r["psnr"] < 40 and 0 < r["ssim"] < 1 and r["swd"] > 0 and r["mmd"] > 0, r
try:
    import numpy as np
    from skimage import io
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
except ImportError:
    print("no scikit-image: cross-check skipped"); sys.exit(0)
a = io.imread(f"{tmp}/a.ppm").astype(np.float64) / 255
b = io.imread(f"{tmp}/b.ppm").astype(np.float64) / 255
psnr = peak_signal_noise_ratio(a, b, data_range=1)
ssim = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                             data_range=1, channel_axis=2)
print(f"PSNR {r['psnr']:.6f} (scikit-image {psnr:.6f}), SSIM {r['ssim']:.6f} (scikit-image {ssim:.6f})")
assert abs(r["psnr"] - psnr) < 1e-3 and abs(r["ssim"] - ssim) < 1e-4
PY
then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL json / scikit-image cross-check"; fi
echo "test-compare: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
