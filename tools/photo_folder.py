"""Gathering a photo folder (tools/training-data.sh): the size of each candidate, then at the
end the photos no longer selected removed and MANIFEST.tsv listing the selected ones."""
import os
import struct

COLUMNS = ("package", "version", "file", "name", "width", "height", "licence")


def image_info(d):
    """(width, height, colour?) from the start of a PNG (IHDR), JPEG (SOF marker) or WebP
    (first chunk: lossy VP8, lossless VP8L or extended VP8X; WebP is always colour); None if
    none of them."""
    if d[:8] == b"\x89PNG\r\n\x1a\n":
        w, h, _, ctype = struct.unpack(">IIBB", d[16:26])
        return w, h, ctype in (2, 3, 6)          # 0/4 are grey (+alpha)
    if d[:4] == b"RIFF" and d[8:12] == b"WEBP":
        kind = d[12:16]
        if kind == b"VP8 ":
            w, h = struct.unpack("<HH", d[26:30])
            return w & 0x3FFF, h & 0x3FFF, True
        if kind == b"VP8L":
            v = int.from_bytes(d[21:25], "little")
            return (v & 0x3FFF) + 1, ((v >> 14) & 0x3FFF) + 1, True
        if kind == b"VP8X":
            return 1 + int.from_bytes(d[24:27], "little"), 1 + int.from_bytes(d[27:30], "little"), True
        return None
    i = 2 if d[:2] == b"\xff\xd8" else len(d)
    while i + 9 < len(d):
        if d[i] != 0xFF:
            i += 1; continue
        m = d[i + 1]
        if m == 0xD8 or m == 0x01 or 0xD0 <= m <= 0xD7 or m == 0xFF:
            i += 2 if m != 0xFF else 1; continue
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):   # SOFn
            h, w = struct.unpack(">HH", d[i + 5:i + 9])
            return w, h, d[i + 9] >= 3
        i += 2 + struct.unpack(">H", d[i + 2:i + 4])[0]
    return None


def finish(folder, rows):
    """rows: tuples in COLUMNS order, name being the file's name inside folder."""
    wanted = {r[3] for r in rows}
    for old in os.listdir(folder):
        if old != "MANIFEST.tsv" and old not in wanted:
            os.remove(os.path.join(folder, old))
    with open(os.path.join(folder, "MANIFEST.tsv"), "w") as f:
        f.write("\t".join(COLUMNS) + "\n")
        for r in rows:
            f.write("\t".join(map(str, r)) + "\n")
