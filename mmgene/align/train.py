"""Contrastive training of the text-cell model with ``SentenceTransformerTrainer``.

``train(adata, label_cols=...)`` builds pairs (:func:`mmgene.pairs.make_pairs`), a fresh two-tower
model (:func:`mmgene.align.model.build_model`), and trains it with the symmetric InfoNCE loss (or
sentence-transformers' MultipleNegativesSymmetricRankingLoss), seeded, with a progress bar and
zero-shot evaluation on the held-out cells during training.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from mmgene.atomic import check_output
from mmgene.errors import ParameterError, is_whole_number
from mmgene.progress import info, progress_enabled


class ZeroShotEvaluator(BaseEvaluator):
    """Zero-shot balanced accuracy and macro AUROC on held-out cells, run during training."""

    def __init__(self, cells: Sequence[Any], labels: Sequence[str], classes: Sequence[str], name: str = "zero_shot"):
        super().__init__()
        self.cells, self.labels, self.classes, self.name = list(cells), list(labels), list(classes), name
        self.greater_is_better = True
        self.primary_metric = f"{name}_balanced_accuracy"
        self.history: list[dict[str, float]] = []
        #: steps done before the current trainer started (training in rounds restarts the trainer's count)
        self.step_offset = 0

    def __call__(self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        from mmgene.evaluate.classify import zero_shot

        was_training = model.training
        model.eval()
        cells = np.asarray(model.encode(self.cells, task="cell", batch_size=256, convert_to_numpy=True, show_progress_bar=False))
        res = zero_shot(
            cells,
            self.labels,
            lambda t: np.asarray(model.encode(t, task="text", batch_size=256, convert_to_numpy=True, show_progress_bar=False)),
            classes=self.classes,
        )
        model.train(was_training)
        metrics = {
            f"{self.name}_balanced_accuracy": res["balanced_accuracy"],
            f"{self.name}_macro_auroc": res["macro_auroc"],
        }
        steps = steps + self.step_offset if steps >= 0 else steps
        self.history.append({"steps": steps, **metrics})
        info(f"step {steps}: zero-shot balanced accuracy {metrics[self.primary_metric]:.3f}, macro AUROC {res['macro_auroc']:.3f}")
        return metrics

    def store_metrics_in_model_card_data(self, model: Any, metrics: dict[str, Any], epoch: int = 0, step: int = 0) -> None:
        return None



def _check_classes(adata: Any, label_cols: str | Sequence[str]) -> None:
    """Refuse, before any work, a first label column with fewer than two classes once cells without
    a label (None, NaN, empty or blank) are left out: contrastive training needs another class."""
    from mmgene.errors import LabelError
    from mmgene.io import obs_column
    from mmgene.io.labels import MIN_CLASSES, label_text

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


def _check_whole(value: Any, name: str, fix: str) -> None:
    """Raise a ParameterError unless ``value`` is a whole number >= 0 (a bool is not one)."""
    if not is_whole_number(value):
        raise ParameterError(f"{name} must be a whole number >= 0, got {value!r}", f"argument {name}", fix)


def train(
    adata: Any,
    label_cols: str | Sequence[str] = "cell_type",
    *,
    ontology_col: str | None = None,
    inputs: Sequence[str] = ("genes",),
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    text_model: str | None = None,
    train_text: bool = False,
    loss: str = "clip",
    temperature: float = 0.07,
    epochs: float = 4.0,
    max_steps: int = -1,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    captions_per_cell: int = 3,
    marker_share: float = 0.4,
    negatives: bool = False,
    hard_negatives: int = 0,
    mine_every: int = 0,
    test_size: float = 0.2,
    group_col: str | None = None,
    exclude_labels: Sequence[str] = (),
    max_genes: int = 256,
    gene_dim: int = 256,
    dim: int = 256,
    gene_dropout: float = 0.5,
    eval_steps: int = 0,
    gene_bridge: bool = True,
    panel_share: float = 0.3,
    panel_sizes: Sequence[int] = (500, 1000, 2000),
    gene_channel: float = 0.0,
    query_channel: float | None = None,
    seed: int = 0,
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
    out
        Save the model directory here (atomically); checked for writability before training.
    overwrite
        Replace an existing ``out`` (only a folder mmgene wrote).
    train_text
        Fine-tune the text transformer too (slow on CPU); by default it is frozen and its embeddings cached.
    loss
        ``"clip"`` (symmetric InfoNCE, learnable temperature, same-class pairs masked) or ``"mnrl"``
        (sentence-transformers' MultipleNegativesSymmetricRankingLoss, fixed scale ``1/temperature``; it
        masks nothing, so other cells' captions of the same class count as negatives: the weaker choice
        when a batch holds many cells of each class).
    negatives
        Add a random caption of another class to every training row (a third column for the loss).
    hard_negatives
        Train in rounds and mine hard negatives with the model as trained so far: ``K > 0`` gives each
        training row, after every round, a caption of another trained class drawn (seeded) from the
        ``K`` the current model scores closest to the row's cell (:func:`mmgene.pairs.mine_hard_negatives`;
        ``K = 1`` is the closest; scored as the model encodes, i.e. without gene dropout and with the gene
        channel at ``query_channel``). The first round trains as without the option (random negatives with
        ``negatives=True``, none otherwise); one learning-rate schedule and optimizer run through all
        rounds, and round ``r`` shuffles the data and draws its dropout with ``seed + r``, so runs are
        deterministic for a seed. 0 (default): off.
    mine_every
        Steps per round with ``hard_negatives`` (0: one epoch, i.e. mine after every epoch).
    panel_share, panel_sizes
        Share of training rows restricted to a panel of the top-n most variable genes, n drawn from
        ``panel_sizes`` (see :func:`mmgene.pairs.make_pairs`).
    gene_channel
        Weight of the explicit gene channel in the joint space (0: off; see
        :class:`mmgene.align.modules.GeneChannel`).
    query_channel
        Weight of the gene channel when the trained model encodes (default: ``gene_channel``); a larger
        one leans more on the genes a prompt names, which finds cell types training never saw.
    gene_bridge
        Let text reach the genes whose NCBI names/designations resemble it (see
        :func:`mmgene.align.model.gene_text_bridge`); how unseen cell types are found by name.
    eval_steps
        Zero-shot evaluation on the test cells every this many steps (0: once per epoch; needs test_size > 0).
        With ``hard_negatives``: every this many steps within each round (0: at the end of each round).
    """
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from mmgene.align.inputs import GENES
    from mmgene.align.loss import SymmetricInfoNCELoss
    from mmgene.align.model import AlignedModel, build_model
    from mmgene.pairs import make_pairs
    from mmgene.settings import settings

    if loss not in ("clip", "mnrl"):
        raise ParameterError(f"loss must be 'clip' or 'mnrl', got {loss!r}", "argument loss")
    if query_channel is not None and not (gene_channel > 0 and gene_bridge):
        raise ParameterError(
            "query_channel needs the gene channel", "argument query_channel", "pass gene_channel > 0 (with gene_bridge=True)"
        )
    _check_whole(
        hard_negatives, "hard_negatives", "pass 0 (off) or K >= 1: the number of closest other-class captions to draw each negative from"
    )
    _check_whole(mine_every, "mine_every", "pass 0 (every epoch) or a step count")
    if batch_size < 2:
        raise ParameterError(f"batch_size must be at least 2, got {batch_size}", "argument batch_size")
    if out is not None:
        check_output(out, overwrite=overwrite)
    _check_classes(adata, label_cols)
    torch.set_num_threads(max(1, settings.torch_threads))
    t0 = time.perf_counter()
    pairs = make_pairs(
        adata,
        label_cols,
        ontology_col=ontology_col,
        inputs=inputs,
        captions_per_cell=captions_per_cell,
        marker_share=marker_share,
        negatives=negatives,
        test_size=test_size,
        group_col=group_col,
        exclude_labels=exclude_labels,
        max_genes=max_genes,
        panel_share=panel_share,
        panel_sizes=panel_sizes,
        seed=seed,
    )
    classes = pairs.classes
    vocab: list[str] = []
    if GENES in inputs:
        seen: dict[str, None] = {}
        for cell in pairs["train"]["cell"]:
            seen.update(dict.fromkeys(cell[GENES]))
        vocab = sorted(seen)
    obsm_keys = [k for k in inputs if k != GENES]
    obsm_dims = [int(np.asarray(adata.obsm[k]).shape[1]) for k in obsm_keys]
    model = build_model(
        vocab,
        obsm_keys=obsm_keys,
        obsm_dims=obsm_dims,
        text_model=text_model,
        train_text=train_text,
        gene_dim=gene_dim,
        dim=dim,
        max_genes=max_genes,
        gene_dropout=gene_dropout,
        bridge_genes=pairs.marker_genes if gene_bridge else (),
        gene_channel=gene_channel if gene_bridge else 0.0,
        query_channel=query_channel,
        seed=seed,
    )
    if loss == "clip":
        loss_fn = SymmetricInfoNCELoss(model, temperature=temperature)
    else:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesSymmetricRankingLoss

        loss_fn = MultipleNegativesSymmetricRankingLoss(model, scale=1.0 / temperature)
    trained_classes = sorted(set(pairs["train"]["label"]))
    if hard_negatives and len(trained_classes) < 2:
        raise ParameterError(
            f"hard negatives need at least two classes in training, got {[classes[i] for i in trained_classes]}",
            "argument hard_negatives",
            "train on cells of two or more classes (exclude fewer labels) or pass hard_negatives=0",
        )
    evaluator = None
    if "test" in pairs and len(pairs["test"]):
        test = pairs["test"]
        evaluator = ZeroShotEvaluator(test["cell"], [classes[i] for i in test["label"]], classes)
    steps_per_epoch = max(1, len(pairs["train"]) // batch_size)
    total = max_steps if max_steps > 0 else int(np.ceil(epochs * steps_per_epoch))
    # training in rounds (hard negatives): (first step, steps) of each; one round otherwise
    round_steps = (mine_every or steps_per_epoch) if hard_negatives else total
    rounds = [(start, min(round_steps, total - start)) for start in range(0, total, round_steps)]
    captions_by_label = {k: pairs.class_text[k].all_captions() for k in trained_classes}

    def round_dataset(r: int) -> Any:
        """Round 0: the pairs as built; later rounds: negatives mined with the model as it is now."""
        ds = pairs["train"]
        if r > 0:
            from mmgene.pairs.hard_negatives import mine_hard_negatives

            current = AlignedModel(model, list(inputs))
            ds = mine_hard_negatives(ds, current, captions_by_label, top_k=hard_negatives, seed=seed + r)
            model.train()
        with_negative = "negative" in ds.column_names
        if with_negative and loss == "clip" and "negative_label" in ds.column_names:  # the loss masks by the negative's class
            pair = np.stack([np.asarray(ds["label"]), np.asarray(ds["negative_label"])], axis=1).tolist()
            ds = ds.remove_columns("label").add_column("label", pair)
        columns = ["cell", "caption"] + (["negative"] if with_negative else []) + (["label"] if loss == "clip" else [])
        return ds.select_columns(columns)

    def trainer_for(r: int, tmp: str, optimizers: tuple[Any, Any]) -> Any:
        start, steps = rounds[r]
        single = len(rounds) == 1
        per_round_eval = eval_steps or (steps_per_epoch if single else steps)
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=batch_size,
            num_train_epochs=epochs,
            max_steps=max_steps if single else steps,
            learning_rate=learning_rate,
            warmup_steps=max(1, int(0.05 * total)),
            weight_decay=0.01,
            lr_scheduler_type="cosine",
            seed=seed + r,
            data_seed=seed + r,
            dataloader_drop_last=True,
            eval_strategy="steps" if evaluator is not None else "no",
            eval_steps=per_round_eval if evaluator is not None else None,
            save_strategy="no",
            logging_steps=max(1, min(50, total // 10)),
            report_to="none",
            disable_tqdm=not progress_enabled(),
            use_cpu=not torch.cuda.is_available(),
            router_mapping={"cell": "cell", "caption": "text", "negative": "text"},
            remove_unused_columns=False,
        )
        if evaluator is not None:
            evaluator.step_offset = start
        return SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=round_dataset(r),
            loss=loss_fn,
            evaluator=evaluator,
            optimizers=optimizers,
        )

    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_for(0, tmp, (None, None))
        if len(rounds) > 1:
            # one optimizer and one cosine schedule over all rounds (each round's trainer would start its own)
            from transformers import get_scheduler

            optimizer = trainer.create_optimizer()
            schedule = get_scheduler(
                "cosine", optimizer=optimizer, num_warmup_steps=max(1, int(0.05 * total)), num_training_steps=total
            )
            trainer.lr_scheduler = schedule
        for r in range(len(rounds)):
            if r > 0:
                info(f"round {r + 1}/{len(rounds)}: hard negatives mined with the model after {rounds[r][0]} steps")
                trainer = trainer_for(r, tmp, (optimizer, schedule))
            trainer.train()
    model.eval()
    seconds = time.perf_counter() - t0
    meta = {
        "classes": list(classes),
        "label_cols": [label_cols] if isinstance(label_cols, str) else list(label_cols),
        "ontology_col": ontology_col,
        "excluded_labels": list(exclude_labels),
        "unlabelled_cells": int(getattr(pairs, "unlabelled_cells", 0)),  # left out: no label in label_cols[0]
        "train_cells": int(len(set(pairs["train"]["obs_name"]))),
        "test_cells": int(len(pairs["test"])) if "test" in pairs else 0,
        # how the cells were split, so `mmgene evaluate --held-out` can score the same test cells
        "split": {"n_obs": int(adata.n_obs), "test_size": test_size, "seed": seed, "group_col": group_col},
        "params": {
            "loss": loss, "temperature_init": temperature, "epochs": epochs, "max_steps": max_steps, "steps": total,
            "batch_size": batch_size, "learning_rate": learning_rate, "captions_per_cell": captions_per_cell,
            "marker_share": marker_share, "negatives": negatives,
            "hard_negatives": hard_negatives, "mine_every": round_steps if hard_negatives else 0, "rounds": len(rounds),
            "test_size": test_size, "group_col": group_col,
            "max_genes": max_genes, "gene_dim": gene_dim, "dim": dim, "gene_dropout": gene_dropout,
            "train_text": train_text, "seed": seed, "vocab_size": len(vocab), "gene_bridge": gene_bridge, "panel_share": panel_share, "panel_sizes": list(panel_sizes), "gene_channel": gene_channel, "query_channel": query_channel,
            "bridge_genes": len(pairs.marker_genes) if gene_bridge else 0,
        },
        "temperature": getattr(loss_fn, "temperature", temperature),
        "train_seconds": round(seconds, 1),
        "eval_history": evaluator.history if evaluator is not None else [],
    }
    aligned = AlignedModel(model, list(inputs), meta)
    aligned.test_obs_names = list(pairs["test"]["obs_name"]) if "test" in pairs else []
    if out is not None:
        aligned.save(out, overwrite=overwrite)
    info(f"trained in {seconds:.0f} s")
    return aligned
