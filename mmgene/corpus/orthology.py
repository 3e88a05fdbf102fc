"""Mouse gene symbols -> human gene symbols, so genes are matched by symbol across species.

Two ways, one of which a corpus uses for all its mouse datasets:

- **Default: case-insensitive symbol match.** Most one-to-one mouse/human orthologs share their
  symbol up to case (``Cd3e`` / ``CD3E``), so a mouse symbol maps to its upper-cased self when that is
  a human symbol of the *reference set*: GENCODE v44's human symbols (the table behind
  :mod:`mmgene.genes.ids`, always installed) together with every symbol of the corpus's human datasets
  (older names such as ``RP11-…`` that the corpus really uses). Genes of other names (``Gm…``,
  ``…Rik``, genes without a same-name human ortholog) stay unmatched.
- **An orthology table** (:meth:`OrthologyMap.from_file`) replaces the default. Either a table with a
  header row and two columns, the mouse symbol first and the human symbol second, recognised by
  header names containing ``mouse``/``musculus`` and ``human``/``sapiens`` in any order (e.g.
  ``mouse_symbol,human_symbol``) or, failing that, in a table of exactly two columns, by the one
  column the header names (``symbol,mouse_symbol``) or by position when it names neither; or a table
  of two columns without a header row (mouse first), recognised by a first line that names no species
  and holds a known human symbol (``Cd3e,CD3E``); or MGI's ``HOM_MouseHumanSequence.rpt`` as
  downloaded (tab-separated; rows of one ``DB Class Key`` are one homology class, organism in
  ``Common Organism Name``, symbol in ``Symbol``), whose classes become mouse x human pairs. Comma,
  tab or semicolon separated. Mouse symbols are looked up case-insensitively; human symbols are upper-cased.

**Ambiguity rule (tables):** only one-to-one pairs are kept. After blank and repeated pairs are
removed, a mouse symbol paired with two or more human symbols (one-to-many) and a human symbol paired
with two or more mouse symbols (many-to-one) are both dropped, with every pair they take part in: no
choice between candidates depends on row order, and no two mouse genes of a dataset become the same
human gene. :attr:`OrthologyMap.dropped` counts what was dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmgene.errors import CorpusError, _preview

#: header words that mark the mouse and the human column of a two-column table (lower-cased).
MOUSE_WORDS = ("mouse", "musculus", "mmusculus")
HUMAN_WORDS = ("human", "sapiens", "hsapiens")
#: columns of MGI's HOM_MouseHumanSequence report.
MGI_COLUMNS = ("DB Class Key", "Common Organism Name", "Symbol")
#: what refusals of a table's shape suggest.
TABLE_FIX = (
    "write a header row such as mouse_symbol,human_symbol and one mouse,human symbol pair per line "
    "(comma, tab or semicolon separated)"
)


def upper_symbols(symbols: Iterable[object]) -> pd.Series:
    """Symbols as stripped upper-case text, ``""`` for missing ones."""
    s = pd.Series(list(symbols), dtype=object)
    return s.where(s.notna(), "").astype(str).str.strip().str.upper()


@dataclass(frozen=True)
class OrthologyMap:
    """How mouse symbols become human symbols: a one-to-one ``table`` or, without one, membership of
    the upper-cased symbol in ``reference`` (see the module docstring)."""

    table: dict[str, str] | None = None
    reference: frozenset[str] = frozenset()
    source: str = "case-insensitive symbol match"
    #: ``{'one_to_many': mouse symbols dropped, 'many_to_one': mouse symbols dropped, 'pairs_kept': n}``
    dropped: dict[str, int] = field(default_factory=dict)

    @classmethod
    def symbol_match(cls, reference: Iterable[str], described_as: str = "") -> OrthologyMap:
        """The default: a mouse symbol matches the human symbol it equals up to case."""
        ref = frozenset(s for s in upper_symbols(reference) if s)
        return cls(None, ref, f"case-insensitive symbol match{described_as}")

    @classmethod
    def from_pairs(
        cls, mouse: Iterable[object], human: Iterable[object], source: str = "orthology table"
    ) -> OrthologyMap:
        """A one-to-one table from (mouse, human) pairs; ambiguous pairs dropped (module docstring)."""
        pairs = pd.DataFrame({"mouse": upper_symbols(mouse), "human": upper_symbols(human)})
        pairs = pairs[(pairs["mouse"] != "") & (pairs["human"] != "")].drop_duplicates()
        per_mouse = pairs.groupby("mouse")["human"].transform("size")
        per_human = pairs.groupby("human")["mouse"].transform("size")
        one_to_many = set(pairs.loc[per_mouse > 1, "mouse"])
        many_to_one = set(pairs.loc[(per_human > 1) & (per_mouse == 1), "mouse"])
        kept = pairs[(per_mouse == 1) & (per_human == 1)]
        table = dict(zip(kept["mouse"], kept["human"]))
        dropped = {"pairs_kept": len(table), "one_to_many": len(one_to_many), "many_to_one": len(many_to_one)}
        return cls(table, frozenset(), source, dropped)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> OrthologyMap:
        """Read a two-column table or MGI's HOM_MouseHumanSequence report (module docstring)."""
        from mmgene.io.tables import read_text_table

        path = Path(path)
        options: dict[str, Any] = dict(
            what="orthology table", error=CorpusError, missing_fix="pass a CSV with a mouse and a human symbol column",
            unreadable_fix=TABLE_FIX, sep=None,
        )
        frame = read_text_table(path, **options)
        source = f"orthology table {path.name}"
        if all(c in frame.columns for c in MGI_COLUMNS):
            found = cls._from_mgi(frame, source)
            columns = "the mouse and human rows of one DB Class Key"
        else:
            mouse_col, human_col = _pick_columns(list(frame.columns), path)
            if _is_pair(list(frame.columns)):  # no header row: its first line is a pair like the others
                frame = read_text_table(path, header=None, **options).set_axis(["column 1", "column 2"], axis=1)
                mouse_col, human_col = "column 1", "column 2"
            if frame.empty:
                raise CorpusError(
                    "the orthology table has a header row but no pairs", str(path),
                    "add one mouse,human symbol pair per line below the header",
                )
            found = cls.from_pairs(frame[mouse_col], frame[human_col], source)
            columns = f"mouse symbols in {mouse_col!r}, human symbols in {human_col!r}"
        if not found.table:  # every mouse gene would be left unmatched
            raise CorpusError(
                f"the orthology table gives no one-to-one mouse,human pair ({columns}; {len(frame):,} rows read, blank "
                f"symbols ignored; mouse symbols dropped as one-to-many: {found.dropped['one_to_many']:,}, as "
                f"many-to-one: {found.dropped['many_to_one']:,})",
                str(path),
                "check that the table holds mouse and human symbols in the columns named, one pair per line",
            )
        return found

    @classmethod
    def _from_mgi(cls, frame: pd.DataFrame, source: str) -> OrthologyMap:
        organism = frame["Common Organism Name"].str.lower()
        mouse = frame[organism.str.startswith("mouse")][["DB Class Key", "Symbol"]]
        human = frame[organism == "human"][["DB Class Key", "Symbol"]]
        pairs = mouse.merge(human, on="DB Class Key", suffixes=("_mouse", "_human"))
        return cls.from_pairs(pairs["Symbol_mouse"], pairs["Symbol_human"], source)

    def to_human(self, symbols: Iterable[object]) -> np.ndarray:
        """Human symbol (upper-case) for each mouse symbol, ``""`` where none matches."""
        up = upper_symbols(symbols)
        if self.table is not None:
            return up.map(self.table).fillna("").to_numpy(dtype=object)
        return up.where(up.isin(self.reference), "").to_numpy(dtype=object)

    def describe(self) -> dict[str, object]:
        """Plain data for reports and provenance."""
        out: dict[str, object] = {"source": self.source}
        if self.table is None:
            out["reference_symbols"] = len(self.reference)
        else:
            out.update(self.dropped)
        return out


def _is_pair(header: list[str]) -> bool:
    """Whether a two-column header names no species but holds a known human symbol (up to case): then it
    is the table's first mouse,human pair, not a header (header words such as ``gene`` or ``symbol`` are
    no human symbols)."""
    from mmgene.genes.ids import gene_table

    if len(header) != 2 or any(w in h.lower() for h in header for w in MOUSE_WORDS + HUMAN_WORDS):
        return False
    known = gene_table().symbol_to_ensembl
    return any(h.strip().upper() in known for h in header)


def _pick_columns(columns: list[str], path: Path) -> tuple[str, str]:
    if len(columns) < 2:
        raise CorpusError(
            f"the orthology table has one column ({_preview(columns)}); it needs a mouse and a human symbol column",
            str(path),
            TABLE_FIX,
        )
    lower = [c.lower() for c in columns]
    mouse = [c for c, l in zip(columns, lower) if any(w in l for w in MOUSE_WORDS)]
    human = [c for c, l in zip(columns, lower) if any(w in l for w in HUMAN_WORDS)]
    if len(mouse) == 1 and len(human) == 1 and mouse != human:
        return mouse[0], human[0]
    if len(columns) == 2 and not mouse and not human:
        return columns[0], columns[1]
    if len(columns) == 2 and len(mouse) + len(human) == 1:  # one column named: the other is the other species
        named = (mouse or human)[0]
        other = columns[1 - columns.index(named)]
        return (named, other) if mouse else (other, named)
    raise CorpusError(
        f"cannot tell the mouse and the human symbol column apart among {_preview(columns, 10)}",
        str(path),
        "name them e.g. mouse_symbol and human_symbol"
        + (", or keep only those two columns (mouse first)" if len(columns) > 2 else " (one name each)"),
    )
