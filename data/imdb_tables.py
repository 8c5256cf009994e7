"""Write the aclImdb reviews as two tables, imdb_train.tsv and imdb_test.tsv (columns text, label), beside this
script: the same reviews that configs/imdb_text_folder.yaml reads as folders, for configs/imdb_text_tsv.yaml.

    python data/imdb_tables.py data/aclImdb      # after: tar xzf aclImdb_v1.tar.gz -C data  (or `make imdb-files`)

Reviews hold tabs, quotes and line breaks; the csv module quotes them, and gru-lab reads them back.
"""

import csv
import sys
from pathlib import Path


def write(split: Path, out: Path) -> int:
    rows = [(f.read_text(encoding="utf-8"), label) for label in ("neg", "pos")
            for f in sorted((split / label).glob("*.txt"))]
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "aclImdb")
    for split in ("train", "test"):
        out = Path(__file__).parent / f"imdb_{split}.tsv"
        print(f"{out}: {write(root / split, out)} reviews")
