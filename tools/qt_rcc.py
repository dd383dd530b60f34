"""Reading Qt resource files (.rcc), where GCompris keeps its images: the paintings that
tools/style-images.sh reassembles and the photos tools/training-data.sh takes."""
import struct
import zlib


def qt_resources(path):
    """{name: bytes} of a Qt .rcc file: 'qres', version, then offsets of the tree, data and
    names tables; tree nodes are 14 bytes (22 from format 2 on), flag 1 = zlib, 2 = folder."""
    b = open(path, "rb").read()
    if b[:4] != b"qres":
        raise SystemExit(f"{path}: not a Qt resource file")
    fmt, tree, data, names = struct.unpack(">4I", b[4:20])
    node_size = 22 if fmt >= 2 else 14
    found = {}

    def name_at(off):
        length = struct.unpack(">H", b[names + off:names + off + 2])[0]
        return b[names + off + 6:names + off + 6 + 2 * length].decode("utf-16-be")

    def visit(index, prefix):
        p = tree + index * node_size
        name_off, flags = struct.unpack(">IH", b[p:p + 6])
        name = name_at(name_off) if index else ""
        if flags & 2:
            count, first = struct.unpack(">II", b[p + 6:p + 14])
            for i in range(count):
                visit(first + i, prefix + name + "/")
            return
        q = data + struct.unpack(">I", b[p + 10:p + 14])[0]
        blob = b[q + 4:q + 4 + struct.unpack(">I", b[q:q + 4])[0]]
        if flags & 1:
            blob = zlib.decompress(blob[4:])   # 4-byte uncompressed size, then zlib
        elif flags & 4:
            return                             # zstd: none of the images we take
        found[prefix + name] = blob
    visit(0, "")
    return found

