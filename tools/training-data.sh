#!/usr/bin/env bash
# training-data.sh [DIR] -- gather the natural-photo training corpus from Debian packages.
#
# Packages are fetched with `apt-get download` into DIR/debs (or $PERCEPT_DEBS) and
# unpacked with `dpkg -x` into DIR/extract/PKG; nothing is installed system-wide.
# Chosen colour photos (>= 256 px each side) are copied to DIR/photos as PKG--NAME.ext and
# listed in DIR/photos/MANIFEST.tsv (package, version, file, name, width, height, licence).
# Re-running is cheap: downloads, extractions and copies already done are skipped.
#
# GCompris's photos (gcompris-qt-data: animals, monuments, the sea, musicians; WebP inside
# its Qt .rcc files) go to a second folder, DIR/photos-gcompris, with their own MANIFEST.tsv
# (licences from each activity's README): recipes that want them name both folders
# (`data = data/photos:data/photos-gcompris`), and the presets trained on DIR/photos alone
# stay reproducible.
#
# The evaluation images (tools/eval-data.sh: kodim02, kodim07, baboon, astronaut, chelsea,
# coffee) and the style paintings (starry_night, scream) are never selected here.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(realpath -m "${1:-$ROOT/data}")
DEBS=${PERCEPT_DEBS:-$DIR/debs}
MAX_DEB_MB=300   # skip any package whose .deb is bigger than this
EXTRACT=$DIR/extract

# What to take: PACKAGE  FOLDER-INSIDE-PACKAGE  FILE-GLOB...  (globs relative to the folder).
# The lists were picked by looking at the images: photos only, no renders, drawings,
# logos, charts, deliberately blurred or tampered images, or near-empty frames.
SELECTION='
opencv-doc  usr/share/doc/opencv-doc/examples/data  aero1.jpg aero3.jpg aloeL.jpg aloeR.jpg
    apple.jpg board.jpg building.jpg butterfly.jpg chicky_512.png ela_original.jpg fruits.jpg
    graf1.png graf3.png home.jpg left.jpg leuvenA.jpg leuvenB.jpg messi5.jpg orange.jpg
    pca_test1.jpg right.jpg rubberwhale1.png rubberwhale2.png smarties.png squirrel_cls.jpg
    stuff.jpg
python3-skimage  usr/lib/python3/dist-packages/skimage/data  hubble_deep_field.jpg ihc.png
    motorcycle_left.png motorcycle_right.png retina.jpg rocket.jpg
scratch  usr/share/scratch/Media/Backgrounds  */*.jpg
mate-backgrounds  usr/share/backgrounds/mate/nature  *.jpg
lomiri-wallpapers-16.04  usr/share/backgrounds  *.jpg
lomiri-wallpapers-20.04  usr/share/backgrounds  Kleiber_by_Lukas_Baubkus.jpg
plasma-workspace-wallpapers  usr/share/wallpapers  Autumn/contents/images/*.jpg
    BytheWater/contents/images/*.jpg ColdRipple/contents/images/*.jpg
    ColorfulCups/contents/images/*.jpg DarkestHour/contents/images/*.jpg
    EveningGlow/contents/images/*.jpg FallenLeaf/contents/images/*.jpg
    Kite/contents/images/*.jpg OneStandsOut/contents/images/*.jpg
    Path/contents/images/*.jpg summer_1am/contents/images/*.jpg
darknet  usr/share/darknet/data  dog.jpg eagle.jpg giraffe.jpg horses.jpg kite.jpg person.jpg
'
# GCompris photos: ACTIVITY  FOLDER-INSIDE-ITS-RCC (under /gcompris/src/activities/)  GLOB...
# Every file these catch was looked at: photos only (the folders' drawings are SVG). Files
# under 60 KB are left out: heavily compressed (about 0.2-0.6 bits per pixel), and it shows.
GCOMPRIS='
erase                  erase/resource                          *.webp
explore_monuments      explore_monuments/resource              */*.webp
explore_world_animals  explore_world_animals/resource/animals  *.webp
explore_farm_animals   explore_farm_animals/resource/animals   *.webp
clickgame              clickgame/resource                      sea*.webp
explore_world_music    explore_world_music/resource/music      *.webp
'

# Files the globs above catch but that are drawings or abstract art (by base name).
EXCLUDE='party-room.jpg room1.jpg room2.jpg room3.jpg spotlight-stage.jpg woods-and-bench.jpg
    school2.jpg brick-wall1.jpg graffiti.jpg
    analogpattern_by_Peter_Nerlich.jpg umang_by_Abhishek_Mudgal.jpg'
# Licences stated per image by upstream, overriding debian/copyright (PACKAGE BASENAME LICENCE).
# opencv-doc: examples/data is upstream samples/data, covered by the "Files: *" stanza.
LICENCES='
python3-skimage hubble_deep_field.jpg public-domain
python3-skimage retina.jpg CC0-1.0
python3-skimage rocket.jpg public-domain
python3-skimage ihc.png no-known-restrictions
opencv-doc * Apache-2.0-AND-BSD-3-Clause
'

. "$(dirname "$0")/debian-fetch.sh"   # fetch PKG

# Fetch every package named in SELECTION; remember which ones are there.
PACKAGES=()
for pkg in $(grep -E '^[^[:space:]]' <<< "$SELECTION" | awk '{print $1}'); do
    if fetch "$pkg"; then PACKAGES+=("$pkg"); fi
done

mkdir -p "$DIR/photos"
TOOLS=$(cd "$(dirname "$0")" && pwd)
export DIR SELECTION EXCLUDE LICENCES TOOLS
python3 - "${PACKAGES[@]}" <<'PY'
import fnmatch, glob, json, os, re, shutil, sys
sys.path.insert(0, os.environ["TOOLS"])
import photo_folder

DIR = os.environ["DIR"]
have = set(sys.argv[1:])
EVAL = {"kodim02", "kodim07", "baboon", "astronaut", "chelsea", "coffee"}
STYLE = {"starry_night", "scream"}
exclude = set(os.environ["EXCLUDE"].split())
overrides = {tuple(l.split()[:2]): l.split()[2] for l in os.environ["LICENCES"].splitlines() if l.strip()}

def copyright_licence(pkg, path):
    """Licence of the last DEP-5 'Files:' stanza matching path (matched as a path suffix)."""
    try:
        text = open(f"{DIR}/extract/{pkg}/usr/share/doc/{pkg}/copyright", errors="replace").read()
    except OSError:
        return "unknown"
    found = "unknown"
    for stanza in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", stanza, re.M)
        lic = re.search(r"^License:[ \t]*(.+)", stanza, re.M)
        if not files or not lic:
            continue
        for pat in files.group(1).split():
            pat = pat.lstrip("./")
            if pat.startswith("debian/"):
                continue
            if (pat == "*" or fnmatch.fnmatch(path, "*/" + pat) or   # installed paths lack the
                    ("*" not in pat and os.path.basename(pat) == os.path.basename(path))):  # source dirs
                found = lic.group(1).strip()
    return found

def licence(pkg, rel, path):
    base = os.path.basename(path)
    for key in ((pkg, base), (pkg, "*")):
        if key in overrides:
            return overrides[key]
    m = re.search(r"(.*/wallpapers/[^/]+)/contents/", path)   # KDE wallpapers carry their own
    if m:
        root = f"{DIR}/extract/{pkg}/{m.group(1)}"
        if os.path.exists(root + "/metadata.json"):
            lic = json.load(open(root + "/metadata.json"))["KPlugin"].get("License")
        else:
            lic = re.search(r"License=(.*)", open(root + "/metadata.desktop").read()).group(1)
        return {"LGPLv3": "LGPL-3.0"}.get(lic, lic)
    return copyright_licence(pkg, path)

# Parse SELECTION: a line starting at column 0 opens "PACKAGE FOLDER GLOB...", indented lines continue it.
entries = []
for line in os.environ["SELECTION"].splitlines():
    if not line.strip():
        continue
    if line[0].isspace():
        entries[-1][2].extend(line.split())
    else:
        pkg, folder, *globs = line.split()
        entries.append((pkg, folder, globs))

rows, wanted, counts = [], set(), {}
for pkg, folder, globs in entries:
    if pkg not in have:
        continue
    version = open(f"{DIR}/extract/{pkg}/.version").read().strip()
    base_dir = f"{DIR}/extract/{pkg}/{folder}"
    for g in globs:
        for src in sorted(glob.glob(f"{base_dir}/{g}")):
            rel = os.path.relpath(src, base_dir)
            stem, ext = os.path.splitext(os.path.basename(rel))
            if os.path.basename(rel) in exclude or os.path.islink(src):
                continue                                     # KDE links other sizes to one file
            if stem in EVAL or stem in STYLE:
                sys.exit(f"refusing evaluation/style image {src}")
            with open(src, "rb") as f:
                info = photo_folder.image_info(f.read(1 << 20))
            if not info or min(info[:2]) < 256 or not info[2]:
                continue                                     # unreadable, small or grey
            # flat name: scratch Nature/lake.jpg -> Nature-lake.jpg, plasma Kite/contents/images/X.jpg -> Kite-X.jpg
            flat = os.path.splitext(rel.replace("/contents/images/", "/"))[0].replace("/", "-")
            name = f"{pkg}--{flat}{ext.lower()}"
            assert name not in wanted, name
            wanted.add(name)
            dst = f"{DIR}/photos/{name}"
            if not (os.path.exists(dst) and os.path.getsize(dst) == os.path.getsize(src)):
                shutil.copyfile(src, dst)
            path = f"/{folder}/{rel}"
            rows.append((pkg, version, path, name, info[0], info[1], licence(pkg, rel, path)))
            counts[pkg] = counts.get(pkg, 0) + 1

photo_folder.finish(f"{DIR}/photos", rows)

for pkg, n in counts.items():
    print(f"{n:4d}  {pkg}")
print(f"{len(rows):4d}  photos in {DIR}/photos")
PY
du -sh "$DIR/photos" | awk '{print "      " $1 " on disk"}'

if ! fetch gcompris-qt-data; then
    # data/photos is complete; recipes that name the second folder will say it is missing
    echo "      $DIR/photos-gcompris not made (gcompris-qt-data skipped)"
    exit 0
fi
mkdir -p "$DIR/photos-gcompris"
export GCOMPRIS EXTRACT
python3 - <<'PY'
import fnmatch, os, re, sys
sys.path.insert(0, os.environ["TOOLS"])
import photo_folder
from qt_rcc import qt_resources

DIR, EXTRACT = os.environ["DIR"], os.environ["EXTRACT"]
out = f"{DIR}/photos-gcompris"
version = open(f"{EXTRACT}/gcompris-qt-data/.version").read().strip()
ROOT = "/gcompris/src/activities/"
README_TYPOS = {"germany/aulaPalatina.webp": "germany/audaPalatina.webp"}   # as upstream spells them

def licences(readme):
    """{file: licence} from a GCompris README: stanzas of Copyright, License, Files."""
    found = {}
    for stanza in re.split(r"\n\s*\n", readme):
        lic = re.search(r"^License:[ \t]*(.+)", stanza, re.M)
        files = re.search(r"^Files:(.*(?:\n(?![A-Za-z]+:).*)*)", stanza, re.M)
        if lic and files:
            for f in files.group(1).split():
                found[f] = lic.group(1).strip()
    return found

rows = []
for line in os.environ["GCOMPRIS"].split("\n"):
    if not line.strip():
        continue
    activity, folder, *globs = line.split()
    rcc = f"usr/share/gcompris-qt/rcc/{activity}.rcc"
    res = qt_resources(f"{EXTRACT}/gcompris-qt-data/{rcc}")
    base = ROOT + folder + "/"
    lic = licences(res[base + "README"].decode("utf-8"))
    for name in sorted(res):
        rel = name[len(base):]
        if not name.startswith(base) or not any(fnmatch.fnmatch(rel, g) for g in globs):
            continue
        blob, size = res[name], photo_folder.image_info(res[name])
        if not size or min(size[:2]) < 256 or len(blob) < 60_000:
            continue
        flat = f"gcompris-qt-data--{activity}-{rel.replace('/', '-')}"
        dst = f"{out}/{flat}"
        if not (os.path.exists(dst) and os.path.getsize(dst) == len(blob)):
            open(dst, "wb").write(blob)
        rows.append(("gcompris-qt-data", version, f"{rcc}:{name}", flat, size[0], size[1],
                     lic.get(rel) or lic.get(README_TYPOS.get(rel), "unknown")))

photo_folder.finish(out, rows)
print(f"{len(rows):4d}  photos in {out}")
PY
du -sh "$DIR/photos-gcompris" | awk '{print "      " $1 " on disk"}'
