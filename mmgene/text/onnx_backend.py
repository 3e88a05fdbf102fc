"""Run a sentence-transformers text model with ONNX Runtime: exported once, cached, batched by length.

Why: on a small CPU, embedding ~14,000 gene texts with MiniLM in torch took minutes. ONNX Runtime runs
the same float32 model with fused kernels on every core this process may use, and batches texts of
similar token length so that little time goes into padding (``docs/benchmarks.md``).

The model is exported from the checked, already loaded sentence-transformers model (its whole
pipeline: transformer, pooling, dense and normalise layers) with ``torch.onnx.export`` and written
atomically to ``<settings.cache_dir>/onnx/<key>/model.onnx``, keyed by a hash of the model's weights
and the variant. Nothing from the model folder is executed: the ONNX file is data, read by ONNX
Runtime. A fresh export is checked against the torch model on probe texts before it is kept.

Variants: ``fp32`` (the same vectors as torch up to float rounding, cosine > 0.9999) and ``int8``
(weights quantised per channel, activations dynamically) for each block's query, key and value
projections only (:func:`attention_projections`); the output and feed-forward projections stay
float32. Over PBMC 3k's 13,971 gene texts int8 is 1.15x faster than float32 with a least cosine of
0.998 to torch; quantising more layers was faster but fell below 0.99 for the worst texts
(``docs/benchmarks.md``). int8 vectors have their own cache key.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmgene.errors import ModelError, cause
from mmgene.settings import settings

#: bump when the exported graph changes (inputs, outputs, exporter options): old exports are not reused
EXPORT_VERSION = 1
#: bump when the int8 quantisation changes (which layers, how)
QUANTISE_VERSION = 3
#: the tokenizer outputs an exported model may take
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
VARIANTS = ("fp32", "int8")
#: texts the fresh export is checked on (lengths differ, so batches carry padding)
PROBES = (
    "CD3E: CD3e molecule. T-cell surface glycoprotein CD3 epsilon chain.",
    "LYZ",
    "MS4A1: membrane spanning 4-domains A1; B-lymphocyte antigen CD20; leukocyte surface antigen Leu-16.",
)
#: the least cosine between a fresh float32 export and torch on the probes
EXPORT_TOLERANCE = 0.9999


def onnx_path(weights_key: str, variant: str) -> Path:
    """Where the export of the model with ``weights_key`` (a hash of its weights) is cached."""
    version = f"{EXPORT_VERSION}.{QUANTISE_VERSION}" if variant == "int8" else str(EXPORT_VERSION)
    key = hashlib.sha256(f"{version}|{variant}|{weights_key}".encode()).hexdigest()[:20]
    return Path(settings.cache_dir) / "onnx" / key / "model.onnx"


def onnx_model(st_model: Any, weights_key: str, variant: str = "fp32") -> Path:
    """The cached ONNX file of ``st_model`` (exported, checked and maybe quantised on first use)."""
    path = onnx_path(weights_key, variant)
    if path.is_file():
        return path
    from mmgene.atomic import atomic_path

    if variant == "int8":
        source = onnx_model(st_model, weights_key, "fp32")
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with atomic_path(path, overwrite=True) as tmp:  # mmgene's own cache
            try:
                quantize_dynamic(source, tmp, per_channel=True, weight_type=QuantType.QInt8, nodes_to_quantize=attention_projections(source))
            except Exception as exc:  # noqa: BLE001 - any failure of the quantiser means: use float32
                raise ModelError(f"the ONNX model cannot be quantised ({cause(exc)})", str(source), "use backend='onnx' or 'torch'") from exc
        return path
    with atomic_path(path, overwrite=True) as tmp:  # mmgene's own cache
        export(st_model, tmp)
        check_export(st_model, tmp)
    return path


def attention_projections(path: Path) -> list[str]:
    """Names of the weight MatMuls that read the same tensor as another weight MatMul: each block's
    query, key and value projections (the feed-forward and output projections each read their own)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    constants = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    weights = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in constants]
    readers = Counter(n.input[0] for n in weights)
    return [n.name for n in weights if readers[n.input[0]] > 1]


def tokenize(st_model: Any, texts: list[str]) -> dict[str, Any]:
    """The model's tokenizer tensors for ``texts`` (padded, truncated as the model truncates)."""
    return st_model.preprocess(texts) if hasattr(st_model, "preprocess") else st_model.tokenize(texts)


def _pipeline(st_model: Any, names: tuple[str, ...]) -> Any:
    """The sentence-transformers model as a function of tokenizer tensors (what is exported)."""
    import torch

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = st_model

        def forward(self, *tensors: Any) -> Any:
            return self.model(dict(zip(names, tensors)))["sentence_embedding"]

    return Pipeline().eval()


def input_names(features: Mapping[str, Any]) -> tuple[str, ...]:
    """The tokenizer tensors the model takes; any other tensor a tokenizer returns cannot be exported
    (sentence-transformers also passes non-tensor entries, such as the modality, which are left out)."""
    extra = sorted(k for k, v in features.items() if k not in INPUTS and hasattr(v, "shape"))
    if extra or "input_ids" not in features:
        raise ModelError(
            f"the ONNX backend takes a text tokenizer's {', '.join(INPUTS)}, this model's gives {sorted(features)}",
            "backend='onnx'",
            "use backend='torch' for this model",
        )
    return tuple(n for n in INPUTS if n in features)


def export(st_model: Any, target: Path) -> None:
    """Export ``st_model``'s whole pipeline (float32) to ``target`` with dynamic batch and sequence axes.

    Attention is exported in its plain ("eager") form, which ONNX Runtime fuses into one kernel; the
    model's own setting is restored afterwards.
    """
    import torch

    features = tokenize(st_model, list(PROBES))
    names = input_names(features)
    auto_model = getattr(st_model[0], "auto_model", None)
    before = getattr(getattr(auto_model, "config", None), "_attn_implementation", None)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    try:
        if before not in (None, "eager"):
            auto_model.set_attn_implementation("eager")
        with torch.no_grad():
            program = torch.onnx.export(
                _pipeline(st_model, names),
                tuple(features[n] for n in names),
                input_names=list(names),
                output_names=["sentence_embedding"],
                dynamo=True,
                dynamic_shapes=(tuple({0: batch, 1: seq} for _ in names),),  # one entry: the *tensors argument
                verbose=False,
            )
        program.save(str(target), external_data=False)
    except Exception as exc:  # noqa: BLE001 - the exporter fails in many ways; all mean: this model cannot
        raise ModelError(f"the text model cannot be exported to ONNX ({cause(exc)})", "backend='onnx'", "use backend='torch'") from exc
    finally:
        if before not in (None, "eager"):
            auto_model.set_attn_implementation(before)


def check_export(st_model: Any, path: Path) -> None:
    """Refuse an export whose vectors differ from torch's on the probe texts (one batch, and one by one)."""
    import torch

    runner = OnnxRunner(path, threads=1)
    with torch.no_grad():
        expected = st_model.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True)
    features = tokenize(st_model, list(PROBES))
    for got in (runner.run(features, batch_size=len(PROBES)), runner.run(features, batch_size=1)):
        cos = np.sum(_l2(got) * _l2(expected), axis=1)
        if not (cos >= EXPORT_TOLERANCE).all():
            raise ModelError(
                f"the ONNX export of the text model gives other vectors than torch (cosine {float(cos.min()):.5f})",
                str(path),
                "use backend='torch' for this model",
            )


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cores() -> int:
    """Cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class OnnxRunner:
    """An ONNX Runtime session (CPU) over an exported model; ``run`` embeds tokenized texts."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cores()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a damaged cache file: say where it is
            raise ModelError(f"the cached ONNX model cannot be loaded ({cause(exc)})", str(path), "delete that folder; it is re-exported on next use") from exc
        self.names = [i.name for i in self.session.get_inputs()]

    def run(self, features: Mapping[str, Any], batch_size: int) -> np.ndarray:
        """Vectors of the tokenized texts in ``features`` (padded tensors from ``preprocess``), in order.

        Texts go to the model in batches of similar token length, each cut to its own longest text, so
        that little work is spent on padding.
        """
        arrays = {n: np.asarray(features[n].numpy() if hasattr(features[n], "numpy") else features[n], dtype=np.int64) for n in self.names}
        mask = arrays["attention_mask"]
        order = np.argsort(-mask.sum(axis=1), kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            cols = np.flatnonzero(mask[rows].any(axis=0))  # drop the columns that are padding in every row
            feed = {n: np.ascontiguousarray(a[rows][:, cols]) for n, a in arrays.items()}
            vecs = self.session.run(None, feed)[0]
            if out is None:
                out = np.empty((len(order), vecs.shape[1]), dtype=np.float32)
            out[rows] = vecs
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)
