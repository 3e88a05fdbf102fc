"""The training loop shared by :func:`mmgene.align.train` (one AnnData) and
:func:`mmgene.align.train_corpus` (a corpus): from built pairs to a trained sentence-transformer.

Vocabulary, model, loss (optionally with a related-class mask), the zero-shot evaluator on the
held-out rows and the training rounds (hard negatives) live here, so both paths train identically
once their pairs exist. Kept apart from :mod:`mmgene.align.train` so that importing it does not bind
the submodule ``train`` over the lazily exported function ``mmgene.align.train``.

Under ``torchrun`` / ``accelerate launch`` the same code trains one model with DistributedDataParallel
(gloo on CPU): every rank builds the same pairs (seeded), the trainer deals each global batch of
``batch_size`` rows out as ``batch_size / N`` rows per rank (a streamed corpus: each rank reads
``batch_size / N`` rows of its own lane, :mod:`mmgene.align.stream_train`), the loss sees the whole global batch
(:mod:`mmgene.align.loss`), hard negatives are mined with each rank encoding its share of the cells
(:func:`mmgene.distributed.map_rows`), the evaluator runs on rank 0 (sentence-transformers shares its
encoding out) and only rank 0 saves. DDP runs with a static graph: the gene table serves both towers,
which run in separate forward calls, and some heads take no part without a gene bridge.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from mmgene.align.config import AlignConfig, TrainingConfig
from mmgene.errors import ParameterError
from mmgene.pairs.result import TrainingPairs
from mmgene.progress import info, progress_enabled


class ZeroShotEvaluator(BaseEvaluator):
    """Zero-shot balanced accuracy and macro AUROC on held-out cells, run during training; scored with
    annotate's default z-scores (:func:`mmgene.text.classes.standardises`), the model's classes as labels."""

    def __init__(self, cells: Sequence[Any], labels: Sequence[str], classes: Sequence[str], name: str = "zero_shot"):
        super().__init__()
        from mmgene.align.modules.cell_input import for_encoding

        self.cells, self.labels, self.classes, self.name = for_encoding(cells), list(labels), list(classes), name
        self.greater_is_better = True
        self.primary_metric = f"{name}_balanced_accuracy"
        self.history: list[dict[str, float]] = []
        #: steps done before the current trainer started (training in rounds restarts the trainer's count)
        self.step_offset = 0

    def __call__(self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        from mmgene.metrics import classification_metrics
        from mmgene.text.classes import class_vectors, standardises, zero_shot_scores
        from mmgene.text.prompts import class_prompts

        was_training = model.training
        model.eval()
        cells = np.asarray(model.encode(self.cells, task="cell", batch_size=256, convert_to_numpy=True, show_progress_bar=False))
        vecs = class_vectors(
            lambda t: np.asarray(model.encode(t, task="text", batch_size=256, convert_to_numpy=True, show_progress_bar=False)),
            class_prompts(self.classes),
        )
        index = {c: k for k, c in enumerate(self.classes)}
        scores = zero_shot_scores(cells, vecs, standardize=standardises(len(cells), None))
        res = classification_metrics(np.array([index[v] for v in self.labels]), scores, self.classes)
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



class _SharedEncoding:
    """An aligned model as hard-negative mining sees it: under a launcher each rank encodes its share of
    the cells and every rank gets all vectors (the same bits whatever the number of ranks)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode_text(texts)

    def encode_inputs(self, cells: Sequence[Any]) -> np.ndarray:
        from mmgene.distributed import map_rows

        cells = list(cells)
        return map_rows(len(cells), lambda a, b: self.model.encode_inputs(cells[a:b]), to="all")


def device_arguments(opt: TrainingConfig) -> dict[str, Any]:
    """The training arguments for ``opt.device``, ``opt.precision`` and the processes of a launcher
    (started here if needed): the global batch split evenly over the ranks, DDP over gloo on CPU."""
    import torch

    from mmgene import distributed

    ranks = distributed.world_size() if distributed.init() else 1
    if opt.batch_size % ranks:
        raise ParameterError(
            f"batch_size={opt.batch_size} does not split evenly over {ranks} processes",
            "TrainingConfig.batch_size",
            f"use a multiple of {ranks}: each process takes batch_size / {ranks} rows of every batch",
        )
    device = distributed.resolve_device(opt.device)
    if opt.precision != "fp32" and device.type != "cuda":
        raise ParameterError(
            f"precision={opt.precision!r} (autocast) needs a CUDA GPU, but this run trains on the {device.type.upper()}",
            "TrainingConfig.precision",
            "pass precision='fp32' on the CPU, or device='cuda' on a machine with a GPU",
        )
    if opt.precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ParameterError(
            "precision='bf16' needs a GPU with bfloat16 support, which this one lacks", "TrainingConfig.precision", "pass 'fp16' or 'fp32'"
        )
    return {
        "per_device_train_batch_size": opt.batch_size // ranks,
        "use_cpu": device.type == "cpu",
        "bf16": opt.precision == "bf16",
        "fp16": opt.precision == "fp16",
        "ddp_backend": "gloo" if ranks > 1 and device.type == "cpu" else None,  # a backend makes accelerate go distributed
        "ddp_find_unused_parameters": False,
        "ddp_static_graph": True,
    }


def _trained_classes(examples: TrainingPairs, facts: Any) -> list[int]:
    """The class ids of the training rows; fewer than two is a LabelError: a contrastive loss needs
    another class to contrast with (with one class, the clip loss masks every negative and learns nothing)."""
    from mmgene.errors import LabelError

    trained = list(facts.labels) if facts is not None else sorted(set(examples["train"]["label"]))
    if len(trained) < 2:
        raise LabelError(
            f"training needs at least two classes, but the training rows hold only {[examples.classes[i] for i in trained]}",
            "the training split (PairsConfig.exclude_labels, test_size, group_col)",
            "exclude fewer labels, or train on cells of two or more classes",
        )
    return trained


def _check_rows(examples: TrainingPairs, facts: Any, opt: TrainingConfig) -> None:
    """Refuse, before the model is built, settings the training rows cannot serve: a batch larger than
    all the rows (the trainer drops the last, incomplete batch, so no step would run), and ``mine_every``
    without hard negatives (it would be ignored)."""
    rows = facts.rows if facts is not None else len(examples["train"])
    if rows < opt.batch_size:
        raise ParameterError(
            f"batch_size={opt.batch_size} is larger than the {rows:,} training rows, so no full batch can be made",
            "TrainingConfig.batch_size",
            f"pass batch_size <= {rows:,} (2 or more), or train on more cells (a smaller test_size, more captions_per_cell)",
        )
    if opt.mine_every and not opt.hard_negatives:
        raise ParameterError(
            f"mine_every={opt.mine_every} sets the steps between hard-negative rounds, but hard negatives are off",
            "TrainingConfig.mine_every",
            "pass hard_negatives=K >= 1 with it (--hard-negatives K), or leave mine_every out",
        )


@dataclass
class _Run:
    """What :func:`fit_pairs` made: the trained sentence-transformer, its evaluator, and figures for the metadata."""

    st: Any
    evaluator: ZeroShotEvaluator | None
    summary: dict[str, int]
    temperature: float


def fit_pairs(
    examples: TrainingPairs,
    *,
    inputs: Sequence[str],
    config: AlignConfig,
    obsm_dims: Sequence[int],
    related: Any = None,
    shared_text: Any = None,
) -> _Run:
    """Everything after the pairs are built, shared by :func:`train` and
    :func:`mmgene.align.corpus_train.train_corpus`: vocabulary, model, loss, evaluator and the
    training rounds. ``related`` (class x class booleans, optional) keeps related classes' pairs out
    of the contrastive negatives (see :class:`~mmgene.align.loss.SymmetricInfoNCELoss`);
    ``shared_text`` (:class:`~mmgene.align.shared_text.SharedText`) is the text model of models trained before."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from mmgene.align.loss import SymmetricInfoNCELoss
    from mmgene.align.model import AlignedModel, build_model
    from mmgene.cells.inputs import GENES

    opt = config.training
    placement = device_arguments(opt)  # checked before the model is built; starts the process group under a launcher
    classes = examples.classes
    # a streamed split (mmgene.align.stream_train) says what reading it whole would tell
    facts = getattr(examples["train"], "stream_facts", None)
    vocab: list[str] = []
    if GENES in inputs and facts is not None:
        vocab = list(facts.vocabulary)
    elif GENES in inputs:
        seen: dict[str, None] = {}
        for cell in examples["train"]["cell"]:
            seen.update(dict.fromkeys(cell[GENES]))
        vocab = sorted(seen)
    trained_classes = _trained_classes(examples, facts)
    _check_rows(examples, facts, opt)
    obsm_keys = [k for k in inputs if k != GENES]
    st = build_model(
        vocab,
        config.model,
        obsm_keys=obsm_keys,
        obsm_dims=obsm_dims,
        max_genes=config.pairs.max_genes,
        bridge_genes=examples.marker_genes,
        seed=opt.seed,
        shared_text=shared_text,
    )
    if opt.loss == "clip":
        loss_fn = SymmetricInfoNCELoss(st, temperature=opt.temperature, related=related)
    else:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesSymmetricRankingLoss

        from mmgene.distributed import world_size

        loss_fn = MultipleNegativesSymmetricRankingLoss(st, scale=1.0 / opt.temperature, gather_across_devices=world_size() > 1)
    evaluator = None
    if "test" in examples and len(examples["test"]):
        test = examples["test"]
        evaluator = ZeroShotEvaluator(test["cell"], [classes[i] for i in test["label"]], classes)
    steps_per_epoch = max(1, (facts.rows if facts is not None else len(examples["train"])) // opt.batch_size)
    total = opt.max_steps if opt.max_steps > 0 else int(np.ceil(opt.epochs * steps_per_epoch))
    # training in rounds (hard negatives): (first step, steps) of each; one round otherwise
    round_steps = (opt.mine_every or steps_per_epoch) if opt.hard_negatives else total
    rounds = [(start, min(round_steps, total - start)) for start in range(0, total, round_steps)]
    # negatives name a type only: a global class's text says the origin of the first dataset that has it,
    # and "a monocyte from human blood" would be given away by its origin to a mouse lung cell
    captions_by_label = {k: examples.class_text[k].all_captions(with_origin=False) for k in trained_classes}

    def round_dataset(r: int) -> Any:
        """Round 0: the pairs as built; later rounds: negatives mined with the model as it is now."""
        ds = examples["train"]
        if r > 0:
            from mmgene.pairs.hard_negatives import mine_hard_negatives

            current = _SharedEncoding(AlignedModel(st, list(inputs)))
            ds = mine_hard_negatives(
                ds, current, captions_by_label, top_k=opt.hard_negatives, seed=opt.seed + r, related=related if opt.loss == "clip" else None
            )
            st.train()
        with_negative = "negative" in ds.column_names
        if with_negative and opt.loss == "clip" and "negative_label" in ds.column_names:  # the loss masks by the negative's class
            pair = np.stack([np.asarray(ds["label"]), np.asarray(ds["negative_label"])], axis=1).tolist()
            ds = ds.remove_columns("label").add_column("label", pair)
        columns = ["cell", "caption"] + (["negative"] if with_negative else []) + (["label"] if opt.loss == "clip" else [])
        return ds.select_columns(columns)

    def trainer_for(r: int, tmp: str, optimizers: tuple[Any, Any]) -> Any:
        start, steps = rounds[r]
        single = len(rounds) == 1
        per_round_eval = opt.eval_steps or (steps_per_epoch if single else steps)
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=opt.epochs,
            max_steps=(total if facts is not None else opt.max_steps) if single else steps,  # a stream has no length
            learning_rate=opt.learning_rate,
            warmup_steps=max(1, int(0.05 * total)),
            weight_decay=0.01,
            lr_scheduler_type="cosine",
            seed=opt.seed + r,
            data_seed=opt.seed + r,
            dataloader_drop_last=True,
            eval_strategy="steps" if evaluator is not None else "no",
            eval_steps=per_round_eval if evaluator is not None else None,
            save_strategy="no",
            logging_steps=max(1, min(50, total // 10)),
            report_to="none",
            disable_tqdm=not progress_enabled(),
            router_mapping={"cell": "cell", "caption": "text", "negative": "text"},
            remove_unused_columns=False,
            # a stream's shards are one lane per rank (stream_train): each rank reads its own
            accelerator_config={"dispatch_batches": False} if facts is not None else None,
            **placement,
        )
        if evaluator is not None:
            evaluator.step_offset = start
        trainer = SentenceTransformerTrainer(
            model=st,
            args=args,
            train_dataset=round_dataset(r),
            loss=loss_fn,
            evaluator=evaluator,
            optimizers=optimizers,
        )
        from mmgene.align.training_log import attach  # logs to the model's training_log.jsonl, not stdout

        return attach(trainer, st)

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
    st.eval()
    summary = {
        "steps": total,
        "rounds": len(rounds),
        "round_steps": round_steps if opt.hard_negatives else 0,
        "vocab_size": len(vocab),
        "bridge_genes": len(examples.marker_genes) if config.model.gene_bridge else 0,
    }
    return _Run(st, evaluator, summary, getattr(loss_fn, "temperature", opt.temperature))
