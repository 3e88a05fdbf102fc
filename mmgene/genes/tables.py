"""mmgene's own gene tables: package data under ``mmgene/_data/``, read once per process.

``tools/make_gene_tables.py`` makes them from upstream public files (GENCODE, NCBI Gene). Each file is
gzip-compressed TSV whose ``# key: value`` header lines say what it holds and where its rows came
from (``version``, ``source``, ``file``); a header row names the columns. Every value is text, read as
written (no missing-value guessing: a gene called ``NA`` stays ``NA``).
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import pandas as pd

from mmgene.errors import DependencyError, cause

#: Ensembl gene id -> symbol (GENCODE, human).
GENE_IDS_HUMAN = "gene_ids_human.tsv.gz"
#: NCBI Gene records (symbol, name, aliases, designations, map location) by species.
NCBI_GENES = {"human": "ncbi_genes_human.tsv.gz", "mouse": "ncbi_genes_mouse.tsv.gz"}


@dataclass(frozen=True)
class ShippedTable:
    """The rows of one gene table (all columns text) and its header lines (``version``, ``source`` ...)."""

    frame: pd.DataFrame
    meta: dict[str, str]


@lru_cache(maxsize=None)
def shipped_table(name: str) -> ShippedTable:
    """Read ``mmgene/_data/<name>``; a missing or damaged file is an installation problem, said plainly."""
    resource = files("mmgene").joinpath("_data", name)
    try:
        data = gzip.decompress(resource.read_bytes())
    except (OSError, EOFError) as exc:
        raise DependencyError(
            f"mmgene's gene table {name} is missing or damaged ({cause(exc)})",
            f"package data of mmgene: {resource}",
            "reinstall mmgene (pip install --force-reinstall mmgene)",
        ) from exc
    return parse_table(data)


def parse_table(data: bytes) -> ShippedTable:
    """A gene table from its uncompressed bytes: ``# key: value`` lines, then tab-separated text."""
    meta: dict[str, str] = {}
    start = 0
    while data.startswith(b"# ", start):
        end = data.index(b"\n", start)
        key, _, value = data[start + 2 : end].decode("utf-8").partition(": ")
        meta[key] = value
        start = end + 1
    frame = pd.read_csv(
        io.BytesIO(data[start:]), sep="\t", dtype=str, keep_default_na=False, na_filter=False, quoting=csv.QUOTE_NONE
    )
    return ShippedTable(frame, meta)
