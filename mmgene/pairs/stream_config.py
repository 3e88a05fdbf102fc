"""The settings of streamed training (:func:`mmgene.align.stream_train.train_stream`), importable
without the libraries that building pairs needs (the command line reads them for its --help)."""

from __future__ import annotations

from dataclasses import dataclass

from mmgene.config import check_whole, setting


@dataclass(frozen=True)
class StreamConfig:
    """How streamed training reads a corpus (:func:`mmgene.align.stream_train.train_stream`)."""

    chunk_size: int = setting(2048, "Cells read from disk at once (bounds the memory of reading)")
    shuffle_chunks: int = setting(4, "Chunks whose rows are shuffled together (drawn from any of the files)")
    eval_cells: int = setting(2000, "Held-out cells (a seeded sample of all datasets') scored by the zero-shot evaluator")

    def __post_init__(self) -> None:
        for name in ("chunk_size", "shuffle_chunks"):
            check_whole(getattr(self, name), name, f"StreamConfig.{name}", "pass a whole number >= 1", minimum=1)
        check_whole(self.eval_cells, "eval_cells", "StreamConfig.eval_cells", "pass 0 (no evaluation) or a cell count")
