#!/usr/bin/env bash
# The operations through the gegl command: a command-line chain, an XML graph, tiling
# through the command line, 8-bit greyscale and 16-bit input, a missing and a corrupt model
# (a warning naming it, the image unchanged, exit 0), a training checkpoint (run as the task
# it trains), and odd image files (tests/images).
# Arguments: the percept command (to write small untrained models); GEGL_PATH is set by meson.
set -u
percept="$1"
tmp="${PERCEPT_TEST_TMP:-/tmp}/test-ops-sh.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
command -v gegl >/dev/null || { echo "no gegl command (Debian package gegl): skipped"; exit 77; }
. "$(dirname "$0")/expect.sh"
# gegl without an output opens a window: never let a mistake here wait for one
# (under tools/sanitize.sh the module is built with ASan: the gegl binary then needs the
# sanitizer runtimes preloaded, which that script names in PERCEPT_SANITIZER_PRELOAD)
gegl() { timeout 120 env ${PERCEPT_SANITIZER_PRELOAD:+LD_PRELOAD="$PERCEPT_SANITIZER_PRELOAD"} gegl "$@"; }

# width x height of a PNG, from its IHDR chunk
size() { python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print("%dx%d" % struct.unpack(">II", d[16:24]))' "$1"; }
# same pixels: PSNR is infinite
same() { "$percept" compare "$1" "$2" | grep -qE "PSNR \(RGB\) +inf"; }

"$percept" init sr --scale 2 --channels 8 --blocks 1 "$tmp/sr2.safetensors" >/dev/null
"$percept" init johnson --base 8 --blocks 1 "$tmp/style.safetensors" >/dev/null
gegl -o "$tmp/in.png" -x '<gegl><node operation="gegl:crop" width="61" height="43"/><node operation="gegl:plasma" seed="5" width="128" height="128"/></gegl>' 2>/dev/null
expect input 0 "^61x43$" -- size "$tmp/in.png"

gegl "$tmp/in.png" -o "$tmp/up.png" -- percept:upscale model="$tmp/sr2.safetensors" 2>/dev/null
expect upscale 0 "^122x86$" -- size "$tmp/up.png"
gegl "$tmp/in.png" -o "$tmp/up-tiled.png" -- percept:upscale model="$tmp/sr2.safetensors" tile-size=16 2>/dev/null
expect tiled-equals-whole 0 "" -- same "$tmp/up.png" "$tmp/up-tiled.png"

# a chain: stylize at half strength, then upscale
gegl "$tmp/in.png" -o "$tmp/chain.png" -- percept:stylize model="$tmp/style.safetensors" strength=0.5 \
    percept:upscale model="$tmp/sr2.safetensors" 2>/dev/null
expect chain 0 "^122x86$" -- size "$tmp/chain.png"

# an XML graph (GEGL's batch format)
cat > "$tmp/graph.xml" <<XML
<?xml version='1.0' encoding='UTF-8'?>
<gegl>
  <node operation='percept:upscale'><params><param name='model'>$tmp/sr2.safetensors</param></params></node>
  <node operation='percept:reconstruct'>
    <params><param name='model'>$tmp/style.safetensors</param><param name='strength'>0</param></params>
  </node>
  <node operation='gegl:load'><params><param name='path'>$tmp/in.png</param></params></node>
</gegl>
XML
gegl "$tmp/graph.xml" -o "$tmp/xml.png" 2>"$tmp/xml.log"
expect xml-graph 0 "^122x86$" -- size "$tmp/xml.png"
expect xml-wrong-task 0 "is for stylize; percept:reconstruct takes models for reconstruct" -- cat "$tmp/xml.log"

# a training checkpoint runs as the task it trains (a run looked at while it goes on)
mkdir -p "$tmp/d" && cp "$tmp/in.png" "$tmp/d/a.png" && cp "$tmp/in.png" "$tmp/d/b.png"
"$percept" train reconstruct --steps 1 --channels 4 --blocks 0 --batch 1 --crop 32 \
    --val-fraction 0 --validate-every 0 --checkpoint-every 1 --data "$tmp/d" \
    --out "$tmp/r.safetensors" >/dev/null 2>&1
gegl "$tmp/in.png" -o "$tmp/ckpt.png" -- percept:reconstruct model="$tmp/r.safetensors.ckpt" 2>"$tmp/ckpt.log"
expect checkpoint-runs 0 "^61x43$" -- size "$tmp/ckpt.png"
expect checkpoint-no-warning 0 "^0$" -- bash -c "grep -c percept:reconstruct: '$tmp/ckpt.log' || true"
gegl "$tmp/in.png" -o "$tmp/ckpt-up.png" -- percept:upscale model="$tmp/r.safetensors.ckpt" 2>"$tmp/ckpt-up.log"
expect checkpoint-task 0 "is for reconstruct; percept:upscale takes models for upscale" -- cat "$tmp/ckpt-up.log"

# 8-bit greyscale JPEG and 16-bit PNG in
gegl "$tmp/in.png" -o "$tmp/grey.jpg" -- gegl:gray 2>/dev/null
gegl "$tmp/grey.jpg" -o "$tmp/grey-up.png" -- percept:upscale model="$tmp/sr2.safetensors" 2>/dev/null
expect greyscale 0 "^122x86$" -- size "$tmp/grey-up.png"
gegl "$tmp/in.png" -o "$tmp/sixteen.png" -- gegl:convert-format format="R'G'B' u16" 2>/dev/null
gegl "$tmp/sixteen.png" -o "$tmp/sixteen-st.png" -- percept:stylize model="$tmp/style.safetensors" 2>/dev/null
expect sixteen-bit 0 "^61x43$" -- size "$tmp/sixteen-st.png"

# device=cuda where the CUDA backend cannot run (not installed, or no GPU: CI): said once
# with the reason, the CPU does the work, the result is the CPU's
expect cuda-fallback 0 "device=cuda: the CUDA backend is not available|device=cuda: CUDA: no usable GPU|device=cuda: CUDA: no GPU found" -- \
    gegl "$tmp/in.png" -o "$tmp/cuda.png" -- percept:upscale model="$tmp/sr2.safetensors" device=cuda
expect cuda-result 0 "" -- same "$tmp/up.png" "$tmp/cuda.png"

# bad models: a warning that names the model, the image passed through, exit 0
expect missing 0 "model 'nope': no preset 'nope'.*passes through unchanged" -- \
    gegl "$tmp/in.png" -o "$tmp/missing.png" -- percept:upscale model=nope
expect missing-size 0 "^61x43$" -- size "$tmp/missing.png"
expect missing-same 0 "" -- same "$tmp/in.png" "$tmp/missing.png"
head -c 300 "$tmp/sr2.safetensors" > "$tmp/cut.safetensors"
expect corrupt 0 "cut.safetensors.*passes through unchanged" -- \
    gegl "$tmp/in.png" -o "$tmp/corrupt.png" -- percept:stylize model="$tmp/cut.safetensors"
expect corrupt-same 0 "" -- same "$tmp/in.png" "$tmp/corrupt.png"

# odd files (tests/images, from make-fixtures.py): GEGL's loaders decide what percept sees,
# and the operations take it whole: CMYK, 1-bit and the first frame of an animated GIF
# (stdout too is quiet: the gegl command reports "1 GeglBuffers leaked" at exit after any
# operation that needs its whole input, GEGL's own gegl:denoise-dct as well)
images="$(dirname "$0")/images"
for f in cmyk.jpg onebit.png animated.gif; do
    gegl "$images/$f" -o "$tmp/odd-up-$f.png" -- percept:upscale model="$tmp/sr2.safetensors" >/dev/null 2>&1
    expect "odd-$f-upscale" 0 "^48x32$" -- size "$tmp/odd-up-$f.png"
    gegl "$images/$f" -o "$tmp/odd-ref-$f.png" 2>/dev/null
    gegl "$images/$f" -o "$tmp/odd-s0-$f.png" -- percept:stylize model="$tmp/style.safetensors" strength=0 >/dev/null 2>&1
    expect "odd-$f-as-loaded" 0 "" -- same "$tmp/odd-ref-$f.png" "$tmp/odd-s0-$f.png"
done
# a 0×0 header: GEGL's loader refuses it, the operation has nothing to do, no crash
expect zero-size-op 0 "" -- gegl "$images/zero-size.png" -o "$tmp/zero.png" -- percept:upscale model="$tmp/sr2.safetensors"
# percept's own image reader (trainer, eval, degrade) refuses both header claims clearly
expect zero-size-reader 1 "zero-size.png: GEGL could not load an image from it" -- \
    "$percept" degrade "$images/zero-size.png" "$tmp/z.png" --degrade noise:10
expect huge-claim-reader 1 "huge-claim.png: 65536×65536 is too large" -- \
    "$percept" degrade "$images/huge-claim.png" "$tmp/h.png" --degrade noise:10

echo "test-ops.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
