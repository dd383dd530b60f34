#!/usr/bin/env bash
# Saving when the disk is full or the file system read-only (provoked by the fail-io shim):
# training stops with the reason, the last good checkpoint pair stays and --resume finishes
# from it to the uninterrupted run's bytes; no temporary file is left behind.
set -u
percept="$1" shim="$2"
tmp="${PERCEPT_TEST_TMP:-/tmp}/test-save-failures.$$"
mkdir -p "$tmp/data"
trap 'rm -rf "$tmp"' EXIT
command -v gegl >/dev/null || { echo "no gegl command (Debian package gegl): skipped"; exit 77; }
. "$(dirname "$0")/expect.sh"
# an ASan build wants its runtime first among the preloaded libraries; the shim goes first
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

for s in 1 2 3 4 5; do
    gegl -o "$tmp/data/p$s.png" -x "<gegl><node operation='gegl:crop' width='64' height='64'/><node operation='gegl:plasma' seed='$s' width='64' height='64'/></gegl>" 2>/dev/null
done
tiny=(--scale 2 --channels 8 --blocks 1 --batch 2 --crop 32 --val-fraction 0.2 --validate-every 0 --checkpoint-every 5)
train() { "$percept" train upscale "${tiny[@]}" --data "$tmp/data" "$@"; }
shimmed() { env LD_PRELOAD="$shim" "$@"; }

train --steps 20 --out "$tmp/a.safetensors" >/dev/null 2>&1

# A checkpoint is the Adam state, then the weights, each one file write + one directory sync:
# 4 fsyncs pass (the step-5 checkpoint), the Adam file of step 10 meets a full disk.
expect disk-full 1 "b.safetensors.adam: cannot write: No space left on device" -- \
    env PERCEPT_FAIL_FSYNC=4 LD_PRELOAD="$shim" "$percept" train upscale "${tiny[@]}" \
    --data "$tmp/data" --steps 20 --out "$tmp/b.safetensors"
expect disk-full-no-temporary 0 "^none$" -- sh -c "ls '$tmp' | grep -q '\.tmp\.' && echo left || echo none"
expect disk-full-keeps-checkpoint 0 "percept.step.*\b5\b" -- "$percept" info "$tmp/b.safetensors.ckpt"
expect disk-full-resume 0 "resuming at step 5" -- train --steps 20 --resume --out "$tmp/b.safetensors"
expect disk-full-resume-equal 0 "" -- cmp "$tmp/a.safetensors.ckpt" "$tmp/b.safetensors.ckpt"

# read-only: the end-of-run checkpoint's two files are made, the trained file cannot be
expect read-only 1 "c.safetensors: cannot create a file in its directory: Read-only file system" -- \
    env PERCEPT_FAIL_MKSTEMP=2 LD_PRELOAD="$shim" "$percept" train upscale "${tiny[@]}" \
    --data "$tmp/data" --steps 3 --checkpoint-every 0 --out "$tmp/c.safetensors"
expect read-only-resume 0 "wrote .*c.safetensors \(3 steps\)" -- \
    train --steps 3 --checkpoint-every 0 --resume --out "$tmp/c.safetensors"
expect init-read-only 1 "d.safetensors: cannot create a file in its directory: Read-only file system" -- \
    env PERCEPT_FAIL_MKSTEMP=0 LD_PRELOAD="$shim" "$percept" init johnson "$tmp/d.safetensors"
expect init-disk-full 1 "d.safetensors: cannot write: No space left on device" -- \
    env PERCEPT_FAIL_FSYNC=0 LD_PRELOAD="$shim" "$percept" init johnson "$tmp/d.safetensors"
expect init-nothing-left 0 "^none$" -- sh -c "ls '$tmp' | grep -q '^d\.' && echo left || echo none"

echo "test-save-failures: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
