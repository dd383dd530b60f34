#!/usr/bin/env bash
# The percept command line as a user meets it: help, version, init, info, and errors.
set -u
percept="$1"
tmp="${PERCEPT_TEST_TMP:-/tmp}/test-cli.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/expect.sh"

expect help 0 "^Usage: percept COMMAND" -- "$percept" --help
expect help-short 0 "Commands:" -- "$percept" -h
expect version 0 "^percept [0-9]+\.[0-9]+\.[0-9]+$" -- "$percept" --version
expect no-command 2 "no command given" -- "$percept"
expect unknown 2 "unknown command 'frobnicate'" -- "$percept" frobnicate
expect init-johnson 0 "1679235 parameters" -- "$percept" init johnson "$tmp/j.safetensors"
expect info-johnson 0 "Receptive field:  109 px" -- "$percept" info "$tmp/j.safetensors"
# the backend: the CPU unless asked; a CUDA backend that cannot load is an error for cuda
# and the CPU for auto, never a crash
expect device-default 0 "Device: +cpu" -- env -u PERCEPT_DEVICE "$percept" info "$tmp/j.safetensors"
expect device-bad 1 "PERCEPT_DEVICE: unknown device 'gpu' \(cpu, cuda or auto\)" -- env PERCEPT_DEVICE=gpu "$percept" info "$tmp/j.safetensors"
expect device-cuda-absent 1 "device cuda: the CUDA backend is not available \(.*nowhere.so" -- \
    env PERCEPT_DEVICE=cuda PERCEPT_CUDA_LIBRARY="$tmp/nowhere.so" "$percept" info "$tmp/j.safetensors"
expect device-auto-falls-back 0 "Device: +cpu" -- \
    env PERCEPT_DEVICE=auto PERCEPT_CUDA_LIBRARY="$tmp/nowhere.so" "$percept" info "$tmp/j.safetensors"
expect info-params 0 "Parameters:       1679235" -- "$percept" info "$tmp/j.safetensors"
expect info-layers 0 "deconv3.conv2d +conv2d +512×512 +×3 " -- "$percept" info --size 512x512 "$tmp/j.safetensors"
expect init-sr 0 "wrote" -- "$percept" init sr --scale 4 --fp16 "$tmp/sr.safetensors"
expect info-sr 0 "Output for 256x256: 1024x1024, 3 channels" -- "$percept" info "$tmp/sr.safetensors"
expect info-sr-task 0 "upscale, scale ×4" -- "$percept" info "$tmp/sr.safetensors"
expect info-sr-f16 0 "F16|F32\+F16" -- "$percept" info "$tmp/sr.safetensors"
expect arch-vgg 0 "\"features.8\"" -- "$percept" arch vgg16 --layer relu2_2
expect bad-kind 1 "unknown network kind 'resnet'" -- "$percept" arch resnet
expect bad-size 2 "--size expects" -- "$percept" info --size 0x5 "$tmp/j.safetensors"
expect missing 1 "$tmp/nope.safetensors" -- "$percept" info "$tmp/nope.safetensors"
printf 'garbage that is not a weight file' > "$tmp/bad.safetensors"
expect garbage 1 "bad.safetensors" -- "$percept" info "$tmp/bad.safetensors"
expect init-ro 1 "percept: " -- "$percept" init johnson /proc/nope/x.safetensors

echo "test-cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
