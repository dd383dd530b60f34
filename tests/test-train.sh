#!/usr/bin/env bash
# percept train upscale, reconstruct, stylize and autoencoder on tiny synthetic data: the loss falls by a stated factor, the same
# seed gives the same bytes, --resume gives what an uninterrupted run gives, Ctrl-C leaves
# a checkpoint to resume from, and bad recipes, flags and data directories are clear errors.
set -u
percept="$1"
tmp="${PERCEPT_TEST_TMP:-/tmp}/test-train.$$"
mkdir -p "$tmp/data/sub" "$tmp/empty"
trap 'rm -rf "$tmp"' EXIT
command -v gegl >/dev/null || { echo "no gegl command (Debian package gegl): skipped"; exit 77; }
. "$(dirname "$0")/expect.sh"

for s in 1 2 3 4 5 6; do
    gegl -o "$tmp/data/p$s.png" -x "<gegl><node operation='gegl:crop' width='96' height='80'/><node operation='gegl:plasma' seed='$s' width='128' height='128'/></gegl>" 2>/dev/null
done
mv "$tmp/data/p6.png" "$tmp/data/sub/"
printf 'not an image' > "$tmp/data/junk.png"
# (--steps 5 first: a later --steps wins, and an error case that wrongly trains ends soon)
tiny=(--steps 5 --scale 2 --channels 8 --blocks 1 --batch 4 --crop 32 --val-fraction 0.2 --validate-every 50)
train() { "$percept" train upscale "${tiny[@]}" --data "$tmp/data" "$@"; }

expect trains 0 "wrote .*a.safetensors \(120 steps\)" -- train --steps 120 --out "$tmp/a.safetensors"
expect preview 0 "PNG image|^[0-9]+x[0-9]+$" -- python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); assert d[:8]==b"\x89PNG\r\n\x1a\n"; print("%dx%d" % struct.unpack(">II", d[16:24]))' "$tmp/a.safetensors.preview.png"
expect loss-plot 0 "^800x400$" -- python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); assert d[:8]==b"\x89PNG\r\n\x1a\n"; print("%dx%d" % struct.unpack(">II", d[16:24]))' "$tmp/a.safetensors.loss.png"
expect skips-junk 0 "skipped .*junk.png" -- train --steps 1 --out "$tmp/j.safetensors"
# OpenBLAS's generic kernel (what it runs on a CPU it does not know) is named, with the fix
# (every CPU percept runs on has AVX2); a kernel named for the CPU is not
expect blas-generic 0 "generic Prescott kernel.*OPENBLAS_CORETYPE=(SkylakeX|Haswell)" -- \
    env OPENBLAS_CORETYPE=Prescott "$percept" train upscale "${tiny[@]}" --data "$tmp/data" \
    --steps 1 --out "$tmp/p.safetensors"
expect blas-named 0 "^none$" -- bash -c '"$@" 2>&1 | grep -c "generic Prescott" | sed "s/^0$/none/"' _ \
    env OPENBLAS_CORETYPE=Haswell "$percept" train upscale "${tiny[@]}" --data "$tmp/data" \
    --steps 1 --out "$tmp/h.safetensors"
expect table 0 "\| gegl-lohalo \| [0-9.]+ \|" -- train --steps 2 --out "$tmp/t.safetensors"
# the l1 loss over the last 20 logged steps is at most half of the first 20's
expect loss-falls 0 "^falls" -- python3 - "$tmp/a.safetensors.csv" <<'PY'
import csv, sys
rows = [float(r["loss"]) for r in csv.DictReader(open(sys.argv[1]))]
first, last = sum(rows[:2]) / 2, sum(rows[-2:]) / 2
print(("falls" if last <= 0.5 * first else "stuck") + f" {first:.4f} -> {last:.4f}")
PY
expect metadata 0 "percept.recipe.*\[train\]" -- "$percept" info "$tmp/a.safetensors"

# same seed, same data: the same bytes
train --steps 120 --out "$tmp/b.safetensors" >/dev/null 2>&1
expect deterministic 0 "" -- cmp "$tmp/a.safetensors.ckpt" "$tmp/b.safetensors.ckpt"

# 60 steps, then resume to 120: the checkpoint equals the uninterrupted run's
train --steps 60 --out "$tmp/c.safetensors" >/dev/null 2>&1
expect resume 0 "resuming at step 60" -- train --steps 120 --resume --out "$tmp/c.safetensors"
expect resume-equal 0 "" -- cmp "$tmp/a.safetensors.ckpt" "$tmp/c.safetensors.ckpt"

# init: fine-tuning starts from a trained file's parameters (its first logged loss is near
# where that file's training ended, not where a fresh network starts), and refuses a file of
# another network
train --steps 10 --init "$tmp/a.safetensors" --lr 1e-6 --out "$tmp/f.safetensors" >/dev/null 2>&1
expect init-starts-there 0 "^there" -- python3 - "$tmp/a.safetensors.csv" "$tmp/f.safetensors.csv" <<'PY'
import csv, sys
a = [float(r["loss"]) for r in csv.DictReader(open(sys.argv[1]))]
f = [float(r["loss"]) for r in csv.DictReader(open(sys.argv[2]))]
print(("there" if f[0] < 0.5 * a[0] and f[0] < 2 * a[-1] else "elsewhere") + f" {a[0]:.4f} .. {a[-1]:.4f}; init {f[0]:.4f}")
PY
expect init-other-net 1 "init .*a.safetensors is not a start for this recipe's network: tensor .* has shape" -- \
    train --init "$tmp/a.safetensors" --channels 4 --out "$tmp/x.safetensors"
# a start whose weights overflow (finite, 10³⁰ times too large): training stops at step 1
# and says the output is not finite, rather than feeding NaN to the losses
"$percept" init sr-shuffle --scale 2 --channels 8 --blocks 1 "$tmp/huge.safetensors" >/dev/null
python3 - "$tmp/huge.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]; d = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8 + n])
for name, t in h.items():
    if name != "__metadata__" and t["dtype"] == "F32":
        a, b = (o + 8 + n for o in t["data_offsets"])
        v = struct.unpack(f"<{(b - a) // 4}f", d[a:b])
        d[a:b] = struct.pack(f"<{len(v)}f", *[x * 1e30 for x in v])
open(p, "wb").write(d)
PY
expect output-overflows 1 "step 1: the network's output contains (NaN|Inf) at index" -- \
    train --init "$tmp/huge.safetensors" --out "$tmp/huge-out.safetensors"
expect init-missing 1 "init: .*nope.safetensors: cannot open" -- train --init "$tmp/nope.safetensors" --out "$tmp/x.safetensors"

# resuming with another network, or with weights and Adam state of different steps
expect resume-other-net 1 "is not a checkpoint of this recipe's network \(a different architecture\)" -- \
    train --steps 130 --resume --channels 4 --out "$tmp/c.safetensors"
train --steps 60 --out "$tmp/m.safetensors" >/dev/null 2>&1
cp "$tmp/a.safetensors.adam" "$tmp/m.safetensors.adam"
expect resume-mismatched-adam 1 "m.safetensors.adam is at step 120 but .*m.safetensors.ckpt at step 60" -- \
    train --steps 130 --resume --out "$tmp/m.safetensors"
expect out-dir-missing 1 "nowhere/x.safetensors.csv: cannot write the log" -- \
    train --out "$tmp/nowhere/x.safetensors"

# Ctrl-C: a checkpoint, exit status 130, and --resume finishes the job
# (percept itself in the background, not the train function: a signal to a subshell stops
# there, and never let a trainer that ignores it keep the test waiting)
"$percept" train upscale "${tiny[@]}" --data "$tmp/data" --steps 1000000 \
    --out "$tmp/i.safetensors" > "$tmp/i.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -f "$tmp/i.safetensors.csv" ] && break; sleep 0.2; done
sleep 1; kill -INT $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done
kill -9 $pid 2>/dev/null
wait $pid; rc=$?
expect interrupted 0 "interrupted at step [0-9]+; checkpoint .* written" -- cat "$tmp/i.log"
expect interrupted-rc 0 "^130$" -- echo $rc
step=$(sed -n 's/.*interrupted at step \([0-9]*\).*/\1/p' "$tmp/i.log")
expect resume-after-interrupt 0 "wrote .*i.safetensors \($((step + 3)) steps\)" -- \
    train --steps $((step + 3)) --resume --out "$tmp/i.safetensors"

# percept eval on a directory, reading the degradation from the model's recipe
expect eval 0 "degradation blur:1.0.*\| gegl-nohalo \|" -- bash -c "'$percept' eval '$tmp/a.safetensors' '$tmp/data' | tr '\n' ' '"
expect eval-json 0 '"percept": \{"psnr_y": [0-9.]+' -- "$percept" eval "$tmp/a.safetensors" "$tmp/data" --json
"$percept" init johnson --base 4 --blocks 0 "$tmp/style.safetensors" >/dev/null
expect eval-wrong-task 1 "is a stylize model; eval measures upscale, reconstruct and autoencoder models" -- "$percept" eval "$tmp/style.safetensors" "$tmp/data"
# a checkpoint is scored as the finished file would be (its task and degradation)
expect eval-checkpoint 0 "degradation blur:1.0.*\| gegl-nohalo \|" -- bash -c "'$percept' eval '$tmp/a.safetensors.ckpt' '$tmp/data' | tr '\n' ' '"
expect eval-no-images 1 "no image in" -- "$percept" eval "$tmp/a.safetensors" "$tmp/empty"

# reconstruct: a denoiser, scored against the noisy input and GEGL's denoisers
rec=(--steps 5 --channels 8 --blocks 1 --batch 4 --crop 32 --val-fraction 0.2 --validate-every 50 --data "$tmp/data")
expect reconstruct 0 "gegl-denoise-dct \|.*wrote .*r.safetensors \(120 steps\)" -- bash -c \
    "'$percept' train reconstruct ${rec[*]} --degrade noise:10-30 --steps 120 --out '$tmp/r.safetensors' 2>/dev/null | tr '\n' ' '"
expect reconstruct-loss-falls 0 "^falls" -- python3 - "$tmp/r.safetensors.csv" <<'PY'
import csv, sys
rows = [float(r["loss"]) for r in csv.DictReader(open(sys.argv[1]))]
first, last = sum(rows[:2]) / 2, sum(rows[-2:]) / 2
print(("falls" if last <= 0.5 * first else "stuck") + f" {first:.4f} -> {last:.4f}")
PY
expect reconstruct-task 0 "Task: +reconstruct" -- "$percept" info "$tmp/r.safetensors"
expect reconstruct-eval 0 '"degraded input": \{"psnr_y"' -- "$percept" eval "$tmp/r.safetensors" "$tmp/data" --json
expect reconstruct-bad-degrade 1 "degrade 'jpeg:0' is not one of noise:SIGMA.*jpeg:QUALITY" -- \
    "$percept" train reconstruct ${rec[*]} --degrade jpeg:0 --out "$tmp/x.safetensors"
expect reconstruct-bad-jpeg-range 1 "degrade 'jpeg:20.5-40' is not one of" -- \
    "$percept" train reconstruct ${rec[*]} --degrade jpeg:20.5-40 --out "$tmp/x.safetensors"
# JPEG artefact removal: quality drawn per crop, scored against the compressed input
expect reconstruct-jpeg 0 "degraded input \|.*wrote .*j.safetensors \(60 steps\)" -- bash -c \
    "'$percept' train reconstruct ${rec[*]} --degrade jpeg:10-40 --steps 60 --out '$tmp/j.safetensors' 2>/dev/null | tr '\n' ' '"
expect reconstruct-jpeg-eval 0 "degradation jpeg:10-40.*\| gegl-denoise-dct \|" -- bash -c \
    "'$percept' eval '$tmp/j.safetensors' '$tmp/data' | tr '\n' ' '"
# restore-half (alignment 2): evaluated on an odd-sized image, extended as the operations do
mkdir -p "$tmp/odd"
gegl -o "$tmp/odd/o.png" -x "<gegl><node operation='gegl:crop' width='45' height='37'/><node operation='gegl:plasma' seed='9' width='64' height='64'/></gegl>" 2>/dev/null
expect restore-half-odd-eval 0 '"degraded input": \{"psnr_y".*"percept self-ensemble": \{"psnr_y": [0-9.]+' -- bash -c \
    "'$percept' train reconstruct ${rec[*]} --arch restore-half --steps 3 --out '$tmp/h.safetensors' >/dev/null 2>&1 && '$percept' eval '$tmp/h.safetensors' '$tmp/odd' --self-ensemble --json"
expect restore-half-odd-crop 1 "restore-half needs at least 2 channels and an even crop" -- \
    "$percept" train reconstruct ${rec[*]} --arch restore-half --crop 33 --out "$tmp/x.safetensors"
expect reconstruct-bad-arch 1 "arch for reconstruct must be one of: restore restore-half" -- \
    "$percept" train reconstruct ${rec[*]} --arch sr --out "$tmp/x.safetensors"

# stylize: the default losses (random-VGG content, patch-distribution style) against a style image
gegl -o "$tmp/style.png" -x "<gegl><node operation='gegl:crop' width='90' height='60'/><node operation='gegl:checkerboard' x='7' y='5'/></gegl>" 2>/dev/null
sty=(--steps 5 --channels 4 --blocks 1 --batch 2 --crop 32 --val-fraction 0.2 --validate-every 20 --style-size 48 --data "$tmp/data")
expect stylize 0 "\| objective \| [0-9.e+]+ \|.*wrote .*s.safetensors \(40 steps\)" -- bash -c \
    "'$percept' train stylize ${sty[*]} --style '$tmp/style.png' --steps 40 --out '$tmp/s.safetensors' 2>/dev/null | tr '\n' ' '"
expect stylize-loss-falls 0 "^falls" -- python3 - "$tmp/s.safetensors.csv" <<'PY'
import csv, sys
rows = [float(r["loss"]) for r in csv.DictReader(open(sys.argv[1]))]
print(("falls" if rows[-1] <= 0.5 * rows[0] else "stuck") + f" {rows[0]:.4f} -> {rows[-1]:.4f}")
PY
expect stylize-task 0 "Task: +stylize" -- "$percept" info "$tmp/s.safetensors"
expect stylize-restore 0 "wrote .*r.safetensors \(5 steps\)" -- "$percept" train stylize ${sty[*]} \
    --style "$tmp/style.png" --arch restore --tail-gain 0.1 --out "$tmp/r.safetensors"
# restore-half, on photos halved to a fraction of a megapixel (96×80 → 48×40 fits 0.002 MP)
expect stylize-restore-half 0 "wrote .*h.safetensors \(5 steps\)" -- \
    "$percept" train stylize ${sty[*]} --style "$tmp/style.png" --arch restore-half --channels 4 \
    --block-gain 0.1 --tail-gain 0.1 --max-megapixels 0.002 --out "$tmp/h.safetensors"
expect stylize-resize 0 "Network: +restore-half-resize-c4-r1" -- bash -c \
    "'$percept' train stylize ${sty[*]} --style '$tmp/style.png' --arch restore-half --channels 4 --upsample resize --max-megapixels 0.002 --out '$tmp/rs.safetensors' >/dev/null 2>&1 && '$percept' info '$tmp/rs.safetensors'"
expect upsample-bad 1 "upsample must be shuffle or resize, not 'bilinear'" -- \
    "$percept" train stylize ${sty[*]} --style "$tmp/style.png" --arch restore-half --upsample bilinear --out "$tmp/x.safetensors"
expect upsample-needs-half 1 "upsample resize is for arch restore-half \(not restore\)" -- \
    "$percept" train stylize ${sty[*]} --style "$tmp/style.png" --arch restore --upsample resize --out "$tmp/x.safetensors"
expect fraction-of-megapixel 1 "skipped .*24×20 is smaller than the 32 px crops" -- \
    "$percept" train stylize ${sty[*]} --style "$tmp/style.png" --max-megapixels 0.001 --out "$tmp/x.safetensors"
expect stylize-bad-arch 1 "arch for stylize must be one of: johnson restore restore-half \(not 'sr'\)" -- \
    "$percept" train stylize ${sty[*]} --style "$tmp/style.png" --arch sr --out "$tmp/x.safetensors"
expect stylize-gram 0 "wrote .*g.safetensors \(5 steps\)" -- "$percept" train stylize ${sty[*]} \
    --style "$tmp/style.png" --losses "feat:vgg16:relu2_2=1;style:vgg16:relu1_2,relu2_2,relu3_3=5;tv=1e-6" \
    --out "$tmp/g.safetensors"
expect stylize-no-style 1 "no style image" -- "$percept" train stylize ${sty[*]} --out "$tmp/x.safetensors"
expect stylize-bad-style 1 "nope.png: cannot read" -- "$percept" train stylize ${sty[*]} --style "$tmp/nope.png" --out "$tmp/x.safetensors"
expect stylize-bad-crop 1 "crop 30: this network needs a multiple of 4" -- "$percept" train stylize ${sty[*]} --style "$tmp/style.png" --crop 30 --out "$tmp/x.safetensors"
expect stylize-bad-degrade 1 "degrade for stylize must be none" -- "$percept" train stylize ${sty[*]} --style "$tmp/style.png" --degrade blur:1 --out "$tmp/x.safetensors"

# percept degrade: an image degraded as training degrades it
expect degrade-jpeg 0 "PSNR \(RGB\) +[12][0-9]\.|PSNR \(RGB\) +3[0-5]\." -- bash -c \
    "'$percept' degrade '$tmp/data/p1.png' '$tmp/p1-q10.png' --degrade jpeg:10 && '$percept' compare '$tmp/data/p1.png' '$tmp/p1-q10.png'"
expect degrade-scale 0 "^48x40$" -- bash -c "'$percept' degrade '$tmp/data/p1.png' '$tmp/p1-half.png' --degrade blur:0.6 --scale 2 && python3 -c 'import struct,sys; d=open(sys.argv[1],\"rb\").read(24); print(\"%dx%d\" % struct.unpack(\">II\", d[16:24]))' '$tmp/p1-half.png'"
expect degrade-bad 1 "degrade 'jpeg:0' is not one of" -- "$percept" degrade "$tmp/data/p1.png" "$tmp/x.png" --degrade jpeg:0
expect degrade-usage 2 "degrade needs IN OUT --degrade SPEC" -- "$percept" degrade "$tmp/data/p1.png"

# percept score: results of another program scored as eval scores: the clean images against
# themselves are perfect; JPEG q10 copies score as JPEG does; a missing or misfit result is named
mkdir -p "$tmp/clean" "$tmp/q10" "$tmp/small"
cp "$tmp/data/p1.png" "$tmp/data/p2.png" "$tmp/clean/"
for s in 1 2; do "$percept" degrade "$tmp/clean/p$s.png" "$tmp/q10/p$s.png" --degrade jpeg:10; done
expect score-self 0 "^\| self \| inf \| 1\.0000 \| 0\.00 \|$" -- "$percept" score "$tmp/clean" "$tmp/clean" --scale 2 --name self
expect score-self-json 0 '"scores": \{"psnr_y": null, "ssim_y": 1\.00000, "swd": 0\.0000\}' -- "$percept" score "$tmp/clean" "$tmp/clean" --json
expect score-jpeg 0 '"name": "q10", "images": 2, "scale": 1, "scores": \{"psnr_y": (2[0-9]|3[0-4])\.' -- "$percept" score "$tmp/clean" "$tmp/q10" --name q10 --json
"$percept" degrade "$tmp/clean/p2.png" "$tmp/small/p2.png" --degrade blur:1 --scale 2
expect score-missing 1 "no result for .*p1.png in" -- "$percept" score "$tmp/clean" "$tmp/small"
cp "$tmp/small/p2.png" "$tmp/small/p1.png"
expect score-size 1 "p1.png is 48×40, but .*p1.png cropped to multiples of 1 is 96×80" -- "$percept" score "$tmp/clean" "$tmp/small"
expect score-usage 2 "score needs CLEAN_DIR RESULT_DIR" -- "$percept" score "$tmp/clean"

# autoencoder (DeePSiM Table 2, its VAE, Ridgeway's binary code) on smooth images
mkdir -p "$tmp/smooth"
for s in 1 2 3 4 5; do
    gegl -o "$tmp/smooth/p$s.png" -x "<gegl><node operation='gegl:gaussian-blur' std-dev-x='4' std-dev-y='4'/><node operation='gegl:crop' width='96' height='80'/><node operation='gegl:plasma' seed='$s' width='128' height='128'/></gegl>" 2>/dev/null
done
ae=(--steps 5 --channels 8 --code 4 --batch 4 --crop 32 --lr 0.003 --val-fraction 0.2 --validate-every 50 --data "$tmp/smooth")
expect autoencoder 0 "\| bicubic from 1/8 \|.*wrote .*ae.safetensors \(300 steps\)" -- bash -c \
    "'$percept' train autoencoder ${ae[*]} --steps 300 --out '$tmp/ae.safetensors' 2>/dev/null | tr '\n' ' '"
# the mean of the last three logged losses is at most 0.7 of the first three's
falls() {
    python3 - "$1" "$2" <<'PY'
import csv, sys
rows = [float(r[sys.argv[2]]) for r in csv.DictReader(open(sys.argv[1]))]
first, last = sum(rows[:3]) / 3, sum(rows[-3:]) / 3
print(("falls" if last <= 0.7 * first else "stuck") + f" {first:.4f} -> {last:.4f}")
PY
}
expect autoencoder-loss-falls 0 "^falls" -- falls "$tmp/ae.safetensors.csv" mse
expect autoencoder-task 0 "Task: +autoencoder" -- "$percept" info "$tmp/ae.safetensors"
expect autoencoder-eval 0 '"bicubic from 1/8": \{"psnr_y"' -- "$percept" eval "$tmp/ae.safetensors" "$tmp/smooth" --json
# with DeePSiM's adversarial term: a discriminator alongside, paused while it wins
# (a generator that hardly learns, lr 1e-7, makes it win)
expect autoencoder-adv 0 "discriminator: updated in ([1-9]|[1-9][0-9]) of 100 steps" -- \
    "$percept" train autoencoder ${ae[*]} --steps 100 --lr 1e-7 --losses "mse;adv=0.01" \
    --discriminator-lr 0.001 --out "$tmp/adv.safetensors"
expect autoencoder-adv-log 0 '^step,seconds,loss,"mse","adv","discriminator",val_psnr_y' -- head -1 "$tmp/adv.safetensors.csv"
# resuming with the discriminator: 30 steps, then on to 60, equals 60 straight
adv=(${ae[*]} --losses "mse;adv=0.01")
"$percept" train autoencoder ${adv[*]} --steps 60 --out "$tmp/adv60.safetensors" >/dev/null 2>&1
"$percept" train autoencoder ${adv[*]} --steps 30 --out "$tmp/adv30.safetensors" >/dev/null 2>&1
"$percept" train autoencoder ${adv[*]} --steps 60 --resume --out "$tmp/adv30.safetensors" >/dev/null 2>&1
expect autoencoder-adv-resume 0 "" -- cmp "$tmp/adv60.safetensors.ckpt" "$tmp/adv30.safetensors.ckpt"
expect autoencoder-adv-resume-disc 0 "" -- cmp "$tmp/adv60.safetensors.disc.ckpt" "$tmp/adv30.safetensors.disc.ckpt"
rm "$tmp/adv30.safetensors.disc.ckpt"
expect autoencoder-adv-resume-missing 1 "--resume \(discriminator\): .*disc.ckpt" -- \
    "$percept" train autoencoder ${adv[*]} --steps 90 --resume --out "$tmp/adv30.safetensors"
# adv works for every task: an upscaler with a discriminator on its 32² outputs
expect upscale-adv 0 "discriminator: updated in [0-9]+ of 20 steps" -- train --steps 20 --losses "l1;adv=0.01" --out "$tmp/sr-adv.safetensors"
expect vae 0 "wrote .*vae.safetensors \(40 steps\)" -- "$percept" train autoencoder ${ae[*]} --arch vae \
    --losses "mse;kl=0.001" --steps 40 --out "$tmp/vae.safetensors"
expect vae-kl-logged 0 "^finite" -- python3 -c '
import csv, math, sys
rows = [float(r["kl"]) for r in csv.DictReader(open(sys.argv[1]))]
print("finite" if rows and all(math.isfinite(v) and v >= 0 for v in rows) else "bad", rows[:3])' "$tmp/vae.safetensors.csv"
# the KL term alone: its gradient, injected at the code layer, drives the code towards N(0, 1)
"$percept" train autoencoder ${ae[*]} --arch vae --losses "kl=1" --steps 60 --out "$tmp/kl.safetensors" >/dev/null 2>&1
expect vae-kl-falls 0 "^falls" -- falls "$tmp/kl.safetensors.csv" kl
expect binary 0 "wrote .*bin.safetensors \(20 steps\)" -- "$percept" train autoencoder ${ae[*]} --arch binary \
    --losses ssim-ridgeway --steps 20 --out "$tmp/bin.safetensors"
expect kl-needs-vae 1 "loss kl needs the variational autoencoder \(arch vae\), not autoencoder" -- \
    "$percept" train autoencoder ${ae[*]} --losses "mse;kl=1" --out "$tmp/x.safetensors"
expect adv-twice 1 "loss 'adv' is given twice" -- \
    "$percept" train autoencoder ${ae[*]} --losses "mse;adv;adv=2" --out "$tmp/x.safetensors"
expect autoencoder-bad-crop 1 "crop 36 is not a multiple of 8" -- \
    "$percept" train autoencoder ${ae[*]} --crop 36 --out "$tmp/x.safetensors"
expect autoencoder-bad-arch 1 "arch for autoencoder must be one of: autoencoder vae binary" -- \
    "$percept" train autoencoder ${ae[*]} --arch restore --out "$tmp/x.safetensors"
expect optimize-no-adv 1 "losses adv and kl train networks" -- \
    "$percept" optimize --content "$tmp/data/p1.png" --style "$tmp/style.png" --losses "mse;adv" --out "$tmp/x.png"

# percept optimize (Gatys et al.'s baseline) and eval-style (Johnson et al.'s Fig. 5 check)
opt=(--style "$tmp/style.png" --size 32 --style-size 48 --every 4)
expect optimize 0 "^falls" -- bash -c "'$percept' optimize --content '$tmp/data/p1.png' ${opt[*]} --iterations 12 --out '$tmp/opt.png' | python3 -c '
import re, sys
v = [float(m.group(1)) for m in re.finditer(r\"objective ([0-9.e+-]+)\", sys.stdin.read())]
print((\"falls\" if len(v) == 3 and v[2] < v[0] else \"stuck\"), v)'"
expect optimize-image 0 "^32x" -- python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print("%dx%d" % struct.unpack(">II", d[16:24]))' "$tmp/opt.png"
mkdir -p "$tmp/photos" && cp "$tmp/data/p1.png" "$tmp/data/p2.png" "$tmp/photos/"
expect eval-style 0 "optimisation, 6 iterations \| [0-9.e+]+ \|" -- bash -c "'$percept' eval-style '$tmp/s.safetensors' --images '$tmp/photos' --size 32 --iterations 3,6 | tr '\n' ' '"
# several data directories, ':'-separated: their images together (6 + 2), each one checked
expect two-dirs 0 "8 images \(7 training, 1 validation" -- train --steps 1 --val-fraction 0.125 \
    --data "$tmp/data:$tmp/photos" --out "$tmp/d2.safetensors"
expect two-dirs-manifest 0 "8 images from .*/data:" -- "$percept" info "$tmp/d2.safetensors"
expect two-dirs-missing 1 "data directory '.*nope' does not exist" -- train --data "$tmp/data:$tmp/nope" \
    --out "$tmp/x.safetensors"
expect optimize-no-style 1 "needs --content IMAGE and --style IMAGE" -- "$percept" optimize --content "$tmp/data/p1.png"
expect eval-style-bad-marks 1 "ascending counts" -- "$percept" eval-style "$tmp/s.safetensors" --images "$tmp/photos" --iterations 6,3

# errors
expect empty-dir 1 "no usable image in '.*empty'" -- "$percept" train upscale --data "$tmp/empty" --out "$tmp/x.safetensors"
expect no-dir 1 "data directory '.*nope' does not exist" -- "$percept" train upscale --data "$tmp/nope" --out "$tmp/x.safetensors"
expect no-out 1 "no output file" -- "$percept" train upscale --data "$tmp/data"
expect bad-value 1 "steps must be an integer from 1" -- train --steps abc --out "$tmp/x.safetensors"
expect bad-crop 1 "crop 33 is not a multiple of scale 2" -- train --crop 33 --out "$tmp/x.safetensors"
expect bad-loss 1 "loss 'nonsense'" -- train --losses "l1=1;nonsense" --out "$tmp/x.safetensors"
expect bad-weight 1 "loss 'l1' has a bad weight '-2'" -- train --losses "l1=-2" --out "$tmp/x.safetensors"
expect bad-tail-gain 1 "tail-gain must be a number from 1e-06 to 100, not '0'" -- train --tail-gain 0 --out "$tmp/x.safetensors"
expect bad-flag 1 "unknown option '--speed'" -- train --speed 3 --out "$tmp/x.safetensors"
expect bad-task 2 "unknown task 'paint' \(upscale, reconstruct, stylize, autoencoder\)" -- "$percept" train paint
printf '[train]\nstepz = 3\n' > "$tmp/bad.ini"
expect bad-recipe-key 1 "unknown key 'stepz'" -- "$percept" train upscale --recipe "$tmp/bad.ini" --data "$tmp/data" --out "$tmp/x.safetensors"
# a value GLib cannot read (invalid UTF-8: found by fuzz-recipe, once a NULL dereference)
printf '[train]\nout = \xff\xfe\n' > "$tmp/utf8.ini"
expect bad-recipe-value 1 "no output file" -- "$percept" train upscale --recipe "$tmp/utf8.ini" --data "$tmp/data"
printf 'this is not ini' > "$tmp/junk.ini"
expect bad-recipe 1 "recipe .*junk.ini" -- "$percept" train upscale --recipe "$tmp/junk.ini" --data "$tmp/data" --out "$tmp/x.safetensors"
expect no-resume 1 "--resume: .*cannot|--resume: .*nope" -- train --resume --out "$tmp/nope.safetensors"
expect help 0 "losses \"l1=1;ssim=0.1\"" -- "$percept" train --help

echo "test-train.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
