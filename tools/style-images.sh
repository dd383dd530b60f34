#!/usr/bin/env bash
# style-images.sh [DIR] -- the public-domain paintings the shipped styles are trained on,
# taken from Debian packages into DIR/styles (default data/styles) with a MANIFEST.tsv.
#
#   starry-night.jpg      Van Gogh, The Starry Night (1889)       opencv-doc examples/data
#   the-scream.jpg        Munch, The Scream (1893)                darknet data
#   great-wave.png        Hokusai, The Great Wave off Kanagawa    gcompris-qt-data paintings.rcc
#   composition-viii.png  Kandinsky, Composition VIII (1923)      gcompris-qt-data paintings.rcc
#
# GCompris keeps its paintings as jigsaw pieces (WebP) inside a Qt resource file; the board
# files (.qml) give each piece's centre as a fraction of the painting's size, so the pieces
# are pasted back at those centres. Needs Debian's python3-pil (installed when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(realpath -m "${1:-$ROOT/data}")
DEBS=${PERCEPT_DEBS:-$DIR/debs}
EXTRACT=$DIR/extract
. "$(dirname "$0")/debian-fetch.sh"   # fetch PKG

for pkg in opencv-doc darknet gcompris-qt-data; do fetch "$pkg"; done
if ! /usr/bin/python3 -c 'import PIL' 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-pil
fi

mkdir -p "$DIR/styles"
TOOLS=$(cd "$(dirname "$0")" && pwd)
export DIR EXTRACT TOOLS
/usr/bin/python3 - <<'PY'
import io, os, re, sys
from PIL import Image

sys.path.insert(0, os.environ["TOOLS"])
from qt_rcc import qt_resources

DIR, EXTRACT = os.environ["DIR"], os.environ["EXTRACT"]
out = os.path.join(DIR, "styles")

def version(pkg):
    return open(os.path.join(EXTRACT, pkg, ".version")).read().strip()

def assemble(res, title_start):
    """The painting whose board title starts with title_start, pasted from its pieces."""
    base = "/gcompris/src/activities/paintings/resource/"
    for name, blob in res.items():
        if not (name.startswith(base + "board/") and name.endswith(".qml")):
            continue
        text = blob.decode("utf-8")
        title = re.search(r'qsTr\("([^"]*)"\)', text).group(1)
        if not title.startswith(title_start):
            continue
        w = int(re.search(r'"width"\s*:\s*(\d+)', text).group(1))
        h = int(re.search(r'"height"\s*:\s*(\d+)', text).group(1))
        canvas = Image.new("RGBA", (w, h))
        pieces = re.findall(r'"pixmapfile"\s*:\s*"([^"]+)",\s*"x"\s*:\s*"([\d.]+)",\s*"y"\s*:\s*"([\d.]+)"', text)
        for file, x, y in pieces:
            piece = Image.open(io.BytesIO(res[base + file])).convert("RGBA")
            canvas.alpha_composite(piece, (round(float(x) * w - piece.width / 2),
                                           round(float(y) * h - piece.height / 2)))
        return title, canvas.crop(canvas.getbbox()).convert("RGB"), len(pieces)
    raise SystemExit(f"paintings.rcc: no board titled '{title_start}…'")

rows = []
for name, pkg, src in [("starry-night.jpg", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/starry_night.jpg"),
                       ("the-scream.jpg", "darknet", "usr/share/darknet/data/scream.jpg")]:
    blob = open(os.path.join(EXTRACT, pkg, src), "rb").read()
    open(os.path.join(out, name), "wb").write(blob)
    w, h = Image.open(io.BytesIO(blob)).size
    rows.append((pkg, version(pkg), src, name, w, h, "public-domain painting"))

rcc = "usr/share/gcompris-qt/rcc/paintings.rcc"
res = qt_resources(os.path.join(EXTRACT, "gcompris-qt-data", rcc))
for name, title_start in [("great-wave.png", "Katsushika Hokusai, The Great Wave"),
                          ("composition-viii.png", "Wassily Kandinsky, Composition VIII")]:
    title, image, n = assemble(res, title_start)
    image.save(os.path.join(out, name))
    rows.append(("gcompris-qt-data", version("gcompris-qt-data"), f"{rcc} ({title}, {n} pieces)",
                 name, image.width, image.height, "public-domain painting"))

with open(os.path.join(out, "MANIFEST.tsv"), "w") as f:
    f.write("package\tversion\tfile\tname\twidth\theight\tlicence\n")
    for r in rows:
        f.write("\t".join(map(str, r)) + "\n")
for r in rows:
    print(f"{r[3]}: {r[4]}×{r[5]} from {r[0]}")
PY
