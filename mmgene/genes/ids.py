"""Human gene symbol <-> Ensembl id resolution.

The mapping table is GENCODE's (release 44), shipped with mmgene as ``mmgene/_data/gene_ids_human.tsv.gz``
(see :mod:`mmgene.genes.tables`; its header names the source file). It needs no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import DuplicateGenesError, NoGeneIdsError, _preview
from mmgene.genes.tables import GENE_IDS_HUMAN, shipped_table

ENSEMBL_RE = re.compile(r"^ENS[A-Z]*G\d{11}(\.\d+)?$")
#: one gene named by its symbol and its Ensembl id together, either way round, joined by ``_``, ``|``
#: or ``:`` ("PTPRC_ENSG00000081237", as scater's ``uniquifyFeatureNames`` names genes whose symbol
#: repeats, common in data converted from Bioconductor; "ENSG00000081237|PTPRC")
JOINED_RE = re.compile(
    r"^(?:(?P<symbol>[^_|:]+)[_|:](?P<ensembl>ENS[A-Z]*G\d{11})(?:\.\d+)?"
    r"|(?P<ensembl2>ENS[A-Z]*G\d{11})(?:\.\d+)?[_|:](?P<symbol2>[^_|:]+))$",
    re.IGNORECASE,
)
#: a copy that ``var_names_make_unique`` numbered ("PSMA2-1" beside "PSMA2")
UNIQUE_COPY_RE = re.compile(r"^(?P<base>.+)-\d+$")
#: var columns searched for identifiers, besides the index, in order of preference.
ID_COLUMNS = ("gene_symbol", "feature_name", "gene_name", "gene_symbols", "symbol", "ensembl_id", "gene_ids", "gene_id", "ensembl")
#: a column counts as symbols when at least this fraction of its values is a known symbol.
MIN_SYMBOL_FRACTION = 0.2
#: the source of symbols or ids that were looked up in the shipped gene table, not read from the data
LOOKED_UP = "gene table"
#: symbols only mouse (MGI) nomenclature writes: title case ("Cd3e", "mt-Co1"; not a human "C1orf112"),
#: RIKEN clone names ("0610005C13Rik") and predicted genes ("Gm12345"), the last two in any case
MOUSE_STYLE_RE = re.compile(
    r"^(?:(?!C(?:\d+|X|Y)orf)[A-Za-z][A-Za-z0-9.-]*[a-z][A-Za-z0-9.-]*|[0-9A-Za-z]{6,}(?i:rik)\d*|(?i:gm)\d{3,})$"
)
#: a gene set reads as mouse when at least this share of its symbols is written in mouse style
MOUSE_STYLE_SHARE = 0.05
#: what messages show of :data:`MOUSE_STYLE_RE`
MOUSE_STYLE_EXAMPLES = "Cd3e, ...Rik, Gm..."


def mouse_style_count(symbols: Any) -> int:
    """How many of ``symbols`` are written as only mouse nomenclature writes them (:data:`MOUSE_STYLE_RE`)."""
    return int(pd.Series(np.asarray(symbols, dtype=object), dtype=object).fillna("").astype(str).str.match(MOUSE_STYLE_RE).sum())


def reads_as_mouse(n_mouse_style: int, n_with_symbol: int) -> bool:
    """Whether a gene set with ``n_mouse_style`` mouse-style symbols of ``n_with_symbol`` reads as mouse
    (:data:`MOUSE_STYLE_SHARE`)."""
    return n_mouse_style > 0 and n_mouse_style >= MOUSE_STYLE_SHARE * n_with_symbol


@dataclass(frozen=True)
class GeneTable:
    """Upper-cased symbol -> Ensembl id and Ensembl id -> symbol, with the table's version."""

    symbol_to_ensembl: dict[str, str]
    ensembl_to_symbol: dict[str, str]
    version: str


@lru_cache(maxsize=1)
def gene_table() -> GeneTable:
    """Load the GENCODE table once per process (``version`` from its header, e.g. ``'GENCODE v44'``)."""
    shipped = shipped_table(GENE_IDS_HUMAN)
    frame = shipped.frame
    ens = frame["ensembl_id"].to_numpy()
    sym = frame["symbol"].str.upper().to_numpy()
    # First occurrence wins for symbols present on several ids (PAR copies, readthroughs).
    symbol_to_ensembl = dict(zip(sym[::-1], ens[::-1]))
    ensembl_to_symbol = dict(zip(ens, frame["symbol"].to_numpy()))
    return GeneTable(symbol_to_ensembl, ensembl_to_symbol, shipped.meta["version"])


def strip_version(ids: np.ndarray) -> np.ndarray:
    """``ENSG00000141510.18`` -> ``ENSG00000141510`` (upper-cased; ``''`` for a missing id)."""
    values = np.asarray(ids, dtype=object)
    return np.array(["" if pd.isna(i) else str(i).split(".")[0].upper() for i in values], dtype=object)


def split_joined(names: pd.Index | pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each name's symbol and Ensembl id (upper-cased, no version) where it joins the two (:data:`JOINED_RE`);
    other names are returned as they are, with ``''`` as their Ensembl id. Object arrays."""
    values = np.asarray(names, dtype=object)
    text = pd.Series(values, dtype=object).where(pd.notna(values), "").astype(str)
    parts = text.str.extract(JOINED_RE)[["symbol", "ensembl", "symbol2", "ensembl2"]].to_numpy(dtype=object)
    symbol_first = pd.notna(parts[:, 0])
    symbols = np.where(symbol_first, parts[:, 0], parts[:, 2])
    joined = pd.notna(symbols)
    out = values.copy()
    out[joined] = symbols[joined]
    ensembl = np.full(len(values), "", dtype=object)
    ensembl[joined] = [str(e).upper() for e in np.where(symbol_first, parts[:, 1], parts[:, 3])[joined]]
    return out, ensembl


def settle_repeats(symbols: pd.Index | pd.Series | np.ndarray, ensembl: np.ndarray) -> tuple[np.ndarray, int]:
    """Give a symbol that several genes of one matrix carry to the gene whose Ensembl id GENCODE names so.

    A reference annotation (10x's hg19 genes.tsv) may name several genes alike; the data then repeats
    the symbol, or ``var_names_make_unique`` numbers the copies ("PSMA2", "PSMA2-1"; a numbered name
    counts as a copy only when it is no known symbol itself, so NKX2-1 stays). In PBMC 3k the
    expressed PSMA2 is "PSMA2-1", and a reader keeping the first "PSMA2" takes an unexpressed novel
    gene instead. Within each such group the first gene whose Ensembl id (``ensembl``, from the data;
    '' for none) the table names by the symbol bears it; every other copy takes the table's symbol
    for its own id when no gene of the matrix has that symbol, else its Ensembl id, as the table names
    genes without a symbol. A group without such an id is left as it is. Returns the symbols (object
    array) and how many changed."""
    values = np.asarray(symbols, dtype=object)
    text = pd.Series(values, dtype=object).where(pd.notna(values), "").astype(str)
    upper = text.str.upper()
    table = gene_table()
    bases = text.str.extract(UNIQUE_COPY_RE)["base"]
    copies = bases.notna() & bases.str.upper().isin(set(upper)) & ~upper.isin(table.symbol_to_ensembl.keys())
    key = upper.where(~copies, bases.str.upper())
    repeated = key.duplicated(keep=False) & (key != "")
    if not repeated.any():
        return values, 0
    ids = pd.Series(strip_version(np.asarray(ensembl, dtype=object)[repeated.to_numpy()]), index=key.index[repeated])
    named = ids.map(table.ensembl_to_symbol).fillna("").astype(str)
    out = values.copy()
    used = set(upper)
    for group_key, members in key[repeated].groupby(key[repeated], sort=False).groups.items():
        bearers = [i for i in members if named[i].upper() == group_key]
        if not bearers:
            continue
        base = bases[bearers[0]] if copies[bearers[0]] else text[bearers[0]]
        for i in members:
            if i == bearers[0]:
                out[i] = base
            elif named[i] and named[i].upper() != group_key and named[i].upper() not in used:
                out[i] = named[i]
                used.add(named[i].upper())
            elif ids[i]:
                out[i] = ids[i]
    changed = int((pd.Series(out, dtype=object).astype(str) != text).sum())
    return out, changed


def id_kind(values: pd.Index | pd.Series | np.ndarray) -> str | None:
    """Classify identifiers as ``'ensembl'``, ``'symbol'`` or ``None`` (unrecognisable)."""
    vals = pd.Series(np.asarray(values, dtype=object)).dropna().astype(str)
    if vals.empty:
        return None
    sample = pd.Series(split_joined(vals.iloc[:: max(1, len(vals) // 2000)])[0], dtype=object).astype(str)
    if sample.map(lambda v: bool(ENSEMBL_RE.match(v.upper()))).mean() >= 0.5:
        return "ensembl"
    known = gene_table().symbol_to_ensembl
    if sample.str.upper().isin(known.keys()).mean() >= MIN_SYMBOL_FRACTION:
        return "symbol"
    return None


@dataclass
class GeneIds:
    """Symbols and Ensembl ids for every gene of a matrix, and where they came from.

    Unknown entries are empty strings. ``symbol_source``/``ensembl_source`` name the var column
    (``'index'`` for ``var_names``) or ``'gene table'`` when filled from GENCODE.
    """

    symbols: np.ndarray
    ensembl: np.ndarray
    symbol_source: str
    ensembl_source: str
    table_version: str = ""
    """The gene table's version (:attr:`GeneTable.version`)."""
    columns: dict[str, str] = field(default_factory=dict)
    n_in_table: int = 0
    """Genes whose Ensembl id is in the GENCODE table (a current, known human gene)."""
    n_joined: int = 0
    """Names that joined a symbol and an Ensembl id (:data:`JOINED_RE`), read as the symbol."""
    n_settled: int = 0
    """Genes whose repeated symbol was settled by their Ensembl id (:func:`settle_repeats`)."""
    n_mouse_style: int = 0
    """The data's symbols written as only mouse nomenclature writes them (:data:`MOUSE_STYLE_RE`)."""

    @property
    def looks_mouse(self) -> bool:
        """Whether the symbols read as mouse genes: then Ensembl ids looked up by symbol are the human
        genes of the same symbol (the one-to-one orthologs, for most genes), not the data's own."""
        return reads_as_mouse(self.n_mouse_style, self.n_with_symbol)

    @property
    def n_genes(self) -> int:
        return len(self.symbols)

    @property
    def n_with_symbol(self) -> int:
        return int((self.symbols != "").sum())

    @property
    def n_with_ensembl(self) -> int:
        return int((self.ensembl != "").sum())

    def summary(self) -> dict[str, object]:
        """Plain-data summary for ``uns['mmgene']`` and ``mmgene info``."""
        n = max(self.n_genes, 1)
        return {
            "symbol_source": self.symbol_source,
            "ensembl_source": self.ensembl_source,
            "id_columns": self.columns,
            "genes": self.n_genes,
            "genes_with_symbol": self.n_with_symbol,
            "genes_with_ensembl": self.n_with_ensembl,
            "symbol_rate": round(self.n_with_symbol / n, 4),
            "ensembl_rate": round(self.n_with_ensembl / n, 4),
            "genes_in_gene_table": self.n_in_table,
            "gene_table_rate": round(self.n_in_table / n, 4),
            "gene_table": self.table_version,
            "joined_names_split": self.n_joined,
            "repeated_symbols_settled": self.n_settled,
            "mouse_style_symbols": self.n_mouse_style,
            "symbols_look_mouse": self.looks_mouse,
        }


def _candidates(var: pd.DataFrame) -> list[tuple[str, pd.Index | pd.Series]]:
    found: list[tuple[str, pd.Index | pd.Series]] = [("index", var.index)]
    lower = {str(c).lower(): c for c in var.columns}
    for name in ID_COLUMNS:
        if name in lower:
            found.append((str(lower[name]), var[lower[name]]))
    return found


def resolve_gene_ids(var: pd.DataFrame, *, source: str = "the AnnData") -> GeneIds:
    """Find symbols and Ensembl ids in ``var`` (index or usual columns) and fill gaps from GENCODE.

    Raises :class:`DuplicateGenesError` when ``var_names`` repeat and :class:`NoGeneIdsError`
    when neither the index nor any usual column holds recognisable human gene identifiers.
    """
    if var.index.has_duplicates:
        dup = var.index[var.index.duplicated()].unique()
        raise DuplicateGenesError(
            f"{len(dup)} gene names appear more than once in var_names ({_preview(dup)})",
            f"var_names of {source}",
            "make them unique, e.g. adata.var_names_make_unique(), or index var by Ensembl id",
        )
    table = gene_table()
    columns: dict[str, str] = {}
    sym_col = ens_col = None
    for name, values in _candidates(var):
        kind = id_kind(values)
        if kind:
            columns[name] = kind
        if kind == "symbol" and sym_col is None:
            sym_col = (name, values)
        elif kind == "ensembl" and ens_col is None:
            ens_col = (name, values)
    if sym_col is None and ens_col is None:
        raise NoGeneIdsError(
            "no recognisable human gene symbols or Ensembl ids in var_names or in the columns "
            f"{', '.join(ID_COLUMNS)} (first names: {_preview(var.index[:5])})",
            f"var of {source}",
            "put gene symbols or Ensembl ids in var_names or in var['gene_symbol'] / var['ensembl_id']",
        )
    joined_ensembl = np.full(len(var), "", dtype=object)
    if sym_col is not None:
        split, joined_ensembl = split_joined(sym_col[1])
        sym_col = (sym_col[0], split)
    if ens_col is not None:
        ensembl = strip_version(np.asarray(ens_col[1], dtype=object))
        ens_source = ens_col[0]
    else:
        up = pd.Series(np.asarray(sym_col[1], dtype=object)).astype(str).str.upper()  # type: ignore[index]
        ensembl = up.map(table.symbol_to_ensembl).fillna("").to_numpy(dtype=object)
        ensembl = np.where(joined_ensembl != "", joined_ensembl, ensembl).astype(object)  # the data's own id first
        ens_source = LOOKED_UP
    n_settled = 0
    if sym_col is not None:
        symbols = pd.Series(np.asarray(sym_col[1], dtype=object)).fillna("").astype(str).to_numpy(dtype=object)
        symbols, n_settled = settle_repeats(symbols, ensembl if ens_col is not None else joined_ensembl)
        sym_source = sym_col[0]
    else:
        symbols = pd.Series(ensembl).map(table.ensembl_to_symbol).fillna("").to_numpy(dtype=object)
        sym_source = LOOKED_UP
    in_table = int(pd.Series(ensembl).isin(table.ensembl_to_symbol.keys()).sum())
    n_mouse = mouse_style_count(symbols) if sym_source != LOOKED_UP else 0
    return GeneIds(
        symbols, ensembl, sym_source, ens_source, table.version, columns, in_table, int((joined_ensembl != "").sum()),
        n_settled, n_mouse,
    )


def note_mouse_symbols(adata: Any, reader: str) -> None:
    """Say on stderr that ``reader`` (a human model: Geneformer, GenePT) reads the genes of ``adata`` as the
    human genes of the same symbol, when :func:`mmgene.io.read` found its symbols written as mouse genes."""
    from mmgene.progress import info
    from mmgene.provenance import input_file, record_of

    found = record_of(adata, "input")
    if found.get("symbols_look_mouse"):
        info(
            f"{input_file(adata, 'the AnnData')}: its gene symbols read as mouse genes "
            f"({int(found.get('mouse_style_symbols', 0)):,} written in mouse style): {reader} reads them as the "
            "human genes of the same symbol, for most genes their one-to-one orthologs"
        )
