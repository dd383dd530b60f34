#!/usr/bin/python3
"""Writes the odd image files the robustness tests feed to the operations and the trainer
(run once, by hand, with Debian's python3-pil; the files are committed): a CMYK JPEG, a
1-bit PNG, a 3-frame animated GIF, a PNG whose header claims 65536×65536 over two rows of
data, and a PNG whose header claims 0×0."""
import struct
import zlib

from PIL import Image

im = Image.new("RGB", (24, 16))
for x in range(24):
    for y in range(16):
        im.putpixel((x, y), (x * 10, y * 15, 128))
im.convert("CMYK").save("cmyk.jpg", quality=90)
im.convert("1").save("onebit.png")
frames = [im, im.transpose(Image.FLIP_LEFT_RIGHT), im.transpose(Image.FLIP_TOP_BOTTOM)]
frames[0].save("animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width, height, rows):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)   # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) +
            chunk(b"IEND", b""))


open("huge-claim.png", "wb").write(png(65536, 65536, b"\0" * (1 + 3 * 65536) * 2))
open("zero-size.png", "wb").write(png(0, 0, b""))
