"""Gene vectors: a table gene symbol -> vector, with how it was made, saved as Parquet or safetensors.

Parquet (``.parquet``) holds columns ``symbol`` and ``vector`` (fixed-size float32 lists) and the metadata
as JSON under the schema key ``mmgene``; safetensors (``.safetensors``) holds a ``vectors`` tensor and the
metadata and symbols as JSON strings. Both open with standard tools (pandas/pyarrow, safetensors).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmgene.atomic import atomic_path
from mmgene.errors import InputFileError, MMGeneError, ParameterError, cause
from mmgene.lazy import require

SUFFIXES = (".parquet", ".safetensors")


@dataclass
class GeneVectors:
    """``symbols[i]`` (upper-cased, unique) has the vector ``vectors[i]`` (float32, L2-normalised rows).

    ``meta`` records ``encoder``, ``text_source``, ``text_source_version``, ``created`` (UTC date-time),
    ``dimension`` and ``n_genes``.
    """

    symbols: np.ndarray
    vectors: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.symbols, (str, dict)) or np.ndim(self.symbols) != 1:
            raise ParameterError(f"gene symbols must be a list, got {type(self.symbols).__name__}", "GeneVectors", "give one symbol per vector")
        symbols = list(self.symbols)
        blank = [i for i, s in enumerate(symbols) if not isinstance(s, str) or not s.strip()]
        if blank:
            raise ParameterError(
                f"{len(blank)} gene symbols are missing, empty or not text (first: #{blank[0]}, {symbols[blank[0]]!r})",
                "GeneVectors",
                "give every vector a gene symbol",
            )
        self.symbols = np.asarray([s.strip().upper() for s in symbols], dtype=object)
        vectors = np.asarray(self.vectors)
        if vectors.dtype.kind not in "biuf":
            raise ParameterError(f"gene vectors hold {vectors.dtype} values, not numbers", "GeneVectors", "pass a numeric matrix, one row per symbol")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.symbols):
            raise ParameterError(
                f"gene vectors have shape {self.vectors.shape} for {len(self.symbols)} symbols",
                "GeneVectors",
                "pass one row per symbol",
            )
        if len(set(self.symbols)) != len(self.symbols):
            repeated = pd.Series(self.symbols, dtype=object)
            dup = sorted(set(repeated[repeated.duplicated()]))[:5]
            raise ParameterError(f"gene symbols repeat in the gene vectors ({', '.join(dup)})", "GeneVectors", "keep one vector per gene")
        if not np.isfinite(self.vectors).all():
            raise ParameterError("gene vectors contain NaN or infinite values", "GeneVectors", "recompute the vectors")
        self.vectors = _unit_rows(self.vectors, self.symbols)
        self.meta = {**self.meta, "dimension": int(self.vectors.shape[1]), "n_genes": int(len(self.symbols))}
        self._index = {s: i for i, s in enumerate(self.symbols)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.symbols)

    def lookup(self, symbols: Iterable[str]) -> np.ndarray:
        """Row of each symbol (case-insensitive), ``-1`` where there is no vector."""
        return np.fromiter((self._index.get(str(s).upper(), -1) for s in symbols), dtype=np.int64)

    # -- building -----------------------------------------------------------------------------------
    @classmethod
    def from_texts(cls, texts: dict[str, str], encoder: Any, *, source: Any = None, **meta: Any) -> GeneVectors:
        """Embed ``{symbol: text}`` with ``encoder`` (a :class:`~mmgene.text.encoders.TextEncoder`).

        Genes are sorted by symbol so the table does not depend on the order of ``texts``.
        """
        if not texts:
            raise ParameterError("no gene text to embed", "GeneVectors.from_texts", "check the text source covers your genes")
        symbols = sorted(texts)
        vectors = encoder.encode([texts[s] for s in symbols])
        info = dict(source.describe()) if source is not None else {}
        info.update(meta)
        info.setdefault("text_source", "unknown")
        info["encoder"] = encoder.name
        info["encoder_key"] = str(getattr(encoder, "cache_key", ""))
        info["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return cls(np.asarray(symbols, dtype=object), vectors, info)

    def subset(self, symbols: Iterable[str]) -> GeneVectors:
        """The rows for ``symbols`` that have a vector (in that order)."""
        rows = self.lookup(symbols)
        rows = rows[rows >= 0]
        return GeneVectors(self.symbols[rows], self.vectors[rows], dict(self.meta))

    # -- files --------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write to ``.parquet`` or ``.safetensors`` (atomically; an existing file only with ``overwrite``)."""
        path = Path(path)
        suffix = vectors_suffix(path)
        with atomic_path(path, overwrite=overwrite) as tmp:
            if suffix == ".parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                flat = pa.array(self.vectors.reshape(-1), type=pa.float32())
                vec = pa.FixedSizeListArray.from_arrays(flat, self.dim)
                table = pa.table({"symbol": pa.array(list(self.symbols), type=pa.string()), "vector": vec})
                table = table.replace_schema_metadata({"mmgene": json.dumps(self.meta, sort_keys=True)})
                pq.write_table(table, tmp)
            else:
                require("safetensors", "saving gene vectors as .safetensors")
                from safetensors.numpy import save_file

                save_file(
                    {"vectors": self.vectors},
                    str(tmp),
                    metadata={"mmgene": json.dumps(self.meta, sort_keys=True), "symbols": json.dumps(list(self.symbols))},
                )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GeneVectors:
        """Read a table written by :meth:`save`."""
        path = Path(path)
        suffix = vectors_suffix(path)
        if not path.is_file():
            raise InputFileError(f"gene vectors file not found: {path}", str(path), "run `mmgene genes embed` first or check the path")
        try:
            if suffix == ".parquet":
                import pyarrow.parquet as pq

                table = pq.read_table(path)
                raw = (table.schema.metadata or {}).get(b"mmgene")
                vec = table.column("vector").combine_chunks()
                dim = vec.type.list_size
                vectors = vec.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
                symbols = table.column("symbol").to_pylist()
                meta = json.loads(raw) if raw else {}
            else:
                require("safetensors", "reading .safetensors gene vectors")
                from safetensors import safe_open

                with safe_open(str(path), framework="numpy") as f:
                    header = f.metadata() or {}
                    vectors = f.get_tensor("vectors")
                symbols = json.loads(header["symbols"])
                meta = json.loads(header.get("mmgene", "{}"))
            if not isinstance(meta, dict):
                raise TypeError(f"its metadata is a JSON {type(meta).__name__}, not an object")
            return cls(symbols, vectors, meta)
        except ParameterError as exc:  # the table's content: say which file
            raise InputFileError(exc.what, str(path), "recompute the gene vectors (`mmgene genes embed`)") from exc
        except MMGeneError:  # e.g. safetensors not installed
            raise
        except Exception as exc:  # pyarrow, safetensors (SafetensorError) and json say a damaged file in their own types
            raise InputFileError(
                f"not a gene vectors file ({cause(exc)})",
                str(path),
                "pass a .parquet or .safetensors file written by mmgene (GeneVectors.save / `mmgene genes embed`)",
            ) from exc


def vectors_suffix(path: Path) -> str:
    """The suffix of a gene-vectors file, ``.parquet`` or ``.safetensors``; any other is a ParameterError
    (checked before any work, since the suffix says how the file is written)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ParameterError(
            f"gene vectors are saved as .parquet or .safetensors, not {suffix or 'a file without suffix'!r}",
            str(path),
            "name the file *.parquet or *.safetensors",
        )
    return suffix


def _unit_rows(vectors: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """``vectors`` with L2-normalised rows (as they are when already so, to the last bit): GenePT-w weighs
    genes by expression only, so a longer vector must not weigh its gene more. A row of zeros has no
    direction and is refused."""
    norms = np.linalg.norm(vectors, axis=1)
    if (norms == 0).any():
        first = int(np.flatnonzero(norms == 0)[0])
        raise ParameterError(
            f"{int((norms == 0).sum())} gene vectors are all zeros (first: {symbols[first]})", "GeneVectors",
            "leave those genes out (a gene without text gets no vector)",
        )
    if np.allclose(norms, 1.0, rtol=0, atol=1e-5):
        return vectors
    return np.ascontiguousarray(vectors / norms[:, None], dtype=np.float32)

