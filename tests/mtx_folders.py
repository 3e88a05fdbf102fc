"""A small Cell Ranger 3 folder with a hand-written Matrix Market file, for the mtx readers' tests."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

GENES = ["CD3E", "MS4A1", "LYZ", "NKG7"]
BARCODES = ["AAAC-1", "AAAG-1", "AAAT-1"]


def mtx_folder(root: Path, entries: Sequence[tuple], *, field: str, gzipped: bool = False, comments: Sequence[str] = ("%",)) -> Path:
    """``root/filtered_feature_bc_matrix`` whose matrix.mtx(.gz) declares ``field``, holds the ``comments``
    lines after its header and lists ``entries`` ((gene, cell, value), 1-based) for 4 genes x 3 cells."""
    folder = root / "filtered_feature_bc_matrix"
    folder.mkdir(parents=True)
    body = "".join(f"{g} {c} {v}\n" for g, c, v in entries)
    head = "".join(f"{line}\n" for line in comments)
    files = {
        "matrix.mtx": f"%%MatrixMarket matrix coordinate {field} general\n{head}4 3 {len(entries)}\n{body}",
        "features.tsv": "".join(f"ENSG{i:011d}\t{g}\tGene Expression\n" for i, g in enumerate(GENES)),
        "barcodes.tsv": "".join(f"{b}\n" for b in BARCODES),
    }
    for name, text in files.items():
        if gzipped:
            (folder / f"{name}.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (folder / name).write_text(text)
    return folder
