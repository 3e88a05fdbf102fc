"""Contrastive training of the text-cell model with ``SentenceTransformerTrainer``.

``train(adata, label_cols=...)`` builds pairs (:func:`mmgene.pairs.make_pairs`), a fresh two-tower
model (:func:`mmgene.align.model.build_model`), and trains it with the symmetric InfoNCE loss (or
sentence-transformers' MultipleNegativesSymmetricRankingLoss), seeded, with a progress bar and
zero-shot evaluation on the held-out cells during training.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgene.align.config import ANNDATA_DEFAULTS, AlignConfig, ModelConfig, TrainingConfig
from mmgene.align.fit import ZeroShotEvaluator, fit_pairs  # noqa: F401 (ZeroShotEvaluator: re-exported)
from mmgene.atomic import check_output
from mmgene.pairs.config import PairsConfig
from mmgene.progress import info


def _check_classes(adata: Any, label_cols: str | Sequence[str]) -> None:
    """Refuse, before any work, a first label column with fewer than two classes once cells without
    a label (None, NaN, empty or blank) are left out: contrastive training needs another class."""
    from mmgene.errors import LabelError
    from mmgene.io import obs_column
    from mmgene.io.labels import MIN_CLASSES
    from mmgene.text.labels import label_text

    first = [label_cols] if isinstance(label_cols, str) else list(label_cols)
    if not first:
        return  # make_pairs says that no column was given
    text = label_text(obs_column(adata, first[0]))
    classes = sorted(set(text[text != ""].tolist()))
    if len(classes) < MIN_CLASSES:
        n_dropped = int((text == "").sum())
        dropped = f" (after leaving out {n_dropped:,} cells with no label)" if n_dropped else ""
        raise LabelError(
            f"the model needs at least two classes in training, got {classes}{dropped}",
            f"obs[{first[0]!r}]",
            "choose a label column with two or more cell types, or label more cells",
        )


def train(
    adata: Any,
    label_cols: str | Sequence[str] = "cell_type",
    *,
    ontology_col: str | None = None,
    inputs: Sequence[str] = ("genes",),
    pairs: PairsConfig | None = None,
    model: ModelConfig | None = None,
    training: TrainingConfig | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Any:
    """Train an aligned text-cell model on ``adata`` and return it as :class:`~mmgene.align.model.AlignedModel`.

    Parameters
    ----------
    label_cols
        obs column(s) with cell-type names (the first defines classes).
    ontology_col
        obs column of Cell Ontology ids; adds ontology names, synonyms and definitions to captions.
    inputs
        ``"genes"`` (expression of gene symbols; transfers across gene sets) and/or obsm keys.
    pairs, model, training
        How the training pairs are made (:class:`~mmgene.pairs.config.PairsConfig`), the model
        (:class:`~mmgene.align.config.ModelConfig`) and the optimisation
        (:class:`~mmgene.align.config.TrainingConfig`); each field says what it does. Left out: the
        class defaults, the best configuration measured. The model keeps all three as ``.config``.
    out
        Save the model directory here (atomically); checked for writability before training.
    overwrite
        Replace an existing ``out`` (only a folder mmgene wrote).

    With ``training.hard_negatives = K > 0`` training runs in rounds (``training.mine_every`` steps
    each; 0: one epoch). After each round every training row gets a caption of another trained class
    drawn (seeded) from the ``K`` the current model scores closest to the row's cell
    (:func:`mmgene.pairs.mine_hard_negatives`; scored as the model encodes, i.e. without gene dropout and
    with the gene channel at ``query_channel``). The first round trains as without the option (random
    negatives with ``pairs.negatives``, none otherwise); one learning-rate schedule and optimizer run
    through all rounds, and round ``r`` shuffles the data and draws its dropout with ``seed + r``, so
    runs are deterministic for a seed. ``training.eval_steps`` then counts within each round (0: at
    the end of each round).
    """
    import torch

    from mmgene.cells.inputs import GENES
    from mmgene.align.model import AlignedModel
    from mmgene.align.recentre import MEAN_KEY, training_cells, training_mean
    from mmgene.pairs import make_pairs
    from mmgene.pairs.splits import cell_ids_record
    from mmgene.settings import settings

    config = AlignConfig(pairs or PairsConfig(), model or ModelConfig(), training or TrainingConfig()).resolved(ANNDATA_DEFAULTS)
    opt = config.training
    if out is not None:
        check_output(out, overwrite=overwrite, folder=True)
    _check_classes(adata, label_cols)
    torch.set_num_threads(max(1, settings.torch_threads))
    t0 = time.perf_counter()
    examples = make_pairs(adata, label_cols, ontology_col=ontology_col, inputs=inputs, config=config.pairs, seed=opt.seed)
    classes = examples.classes
    obsm_dims = [int(np.asarray(adata.obsm[k]).shape[1]) for k in inputs if k != GENES]
    run = fit_pairs(examples, inputs=inputs, config=config, obsm_dims=obsm_dims)
    st, evaluator = run.st, run.evaluator
    st.eval()
    seconds = time.perf_counter() - t0
    meta = {
        "classes": list(classes),
        "label_cols": [label_cols] if isinstance(label_cols, str) else list(label_cols),
        "ontology_col": ontology_col,
        # each class's Cell Ontology id (most of its cells'; "" for none): the hierarchy and the others
        # rule of annotate read them, as they read a corpus model's
        **({"class_ids": [t.term_id for t in examples.class_text]} if ontology_col else {}),
        "unlabelled_cells": int(examples.unlabelled_cells),  # left out: no label in label_cols[0]
        "train_cells": int(len(set(examples["train"]["obs_name"]))),
        "test_cells": int(len(examples["test"])) if "test" in examples else 0,
        # how the cells were split, so `mmgene evaluate --held-out` can score the same test cells
        # and which cells in which order (the split is by position): held_out refuses any other file
        "split": {"n_obs": int(adata.n_obs), "test_size": config.pairs.test_size, "seed": opt.seed, "group_col": config.pairs.group_col,
                  **cell_ids_record(adata.obs_names)},
        # what this run made of the config and the data
        "run": run.summary,
        "temperature": run.temperature,
        "train_seconds": round(seconds, 1),
        "eval_history": evaluator.history if evaluator is not None else [],
    }
    aligned = AlignedModel(st, list(inputs), meta, config)
    aligned.meta[MEAN_KEY] = training_mean(aligned, [training_cells(adata, examples["train"]["obs_name"])])
    aligned.test_obs_names = list(examples["test"]["obs_name"]) if "test" in examples else []
    if out is not None:
        aligned.save(out, overwrite=overwrite)
    info(f"trained in {seconds:.0f} s")
    return aligned
