"""The end of gathering a photo folder (tools/training-data.sh): photos no longer selected
are removed and MANIFEST.tsv lists the selected ones, a row each."""
import os

COLUMNS = ("package", "version", "file", "name", "width", "height", "licence")


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
