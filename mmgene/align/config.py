"""The settings of an aligned model and of its training, one default each.

The defaults are the best configuration measured: the library, the CLI, the demo and the benchmarks
all train with them. Three settings depend on what a model learns from and are left to the trainer
(``None``): hard negatives, the gene channel's encoding weight and the number of ensemble members,
chosen by leaving datasets out for a corpus (``benchmarks/cross_dataset.py``) and on PBMC 3k for one
AnnData (``benchmarks/quality_pbmc.py``); see :class:`TrainerDefaults`. A trained model stores its three configs as they ran (those settings
filled in) in ``mmgene_align.json`` (``dataclasses.asdict``) and :func:`mmgene.align.load` reads them
back as :attr:`mmgene.align.AlignedModel.config`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mmgene.config import check_range, check_share, check_whole, from_dict, setting
from mmgene.errors import ParameterError
from mmgene.pairs.config import PairsConfig

LOSSES = ("clip", "mnrl")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainerDefaults:
    """The settings a config leaves to the trainer (``None``), by what the trainer learns from."""

    hard_negatives: int
    query_channel: float
    members: int = 1
    drop_contradicted: bool = False


#: one AnnData (:func:`mmgene.align.train`): chosen on PBMC 3k (docs/benchmarks.md, first section)
ANNDATA_DEFAULTS = TrainerDefaults(hard_negatives=0, query_channel=0.5)
#: a corpus in memory (:func:`mmgene.align.train_corpus`, ``pretrain``): chosen by leaving datasets out
CORPUS_DEFAULTS = TrainerDefaults(hard_negatives=5, query_channel=0.7, members=4, drop_contradicted=True)
#: a streamed corpus: as in memory, but it cannot mine hard negatives (every row is rewritten between
#: rounds), trains one model (a corpus streamed is one too large to read once per member) and keeps the
#: cells whose labels other datasets contradict unless asked (finding them reads every dataset three more times)
STREAMED_DEFAULTS = TrainerDefaults(hard_negatives=0, query_channel=0.7)


@dataclass(frozen=True)
class ModelConfig:
    """Settings of the two-tower model (:func:`mmgene.align.model.build_model`)."""

    text_model: str | None = setting(
        None, "Text model folder, or a Hub id hf://owner/name[@revision]; none: the offline all-MiniLM-L6-v2"
    )
    train_text: bool = setting(False, "Fine-tune the text transformer too (slow on CPU); otherwise it is frozen and its embeddings cached")
    gene_dim: int = setting(256, "Size of the gene embeddings shared by both towers")
    hidden: int = setting(512, "Hidden width of the projection heads")
    dim: int = setting(256, "Size of the learned part of the joint space")
    gene_dropout: float = setting(0.5, "Largest share of a training cell's genes hidden at random, so the tower reads partial gene panels")
    use_aliases: bool = setting(True, "Let text name genes by their aliases as well as their symbols")
    gene_bridge: bool = setting(
        True, "Let text reach the genes whose NCBI names and designations resemble it; how unseen cell types are found by name"
    )
    gene_channel: float = setting(
        0.3, "Weight of the explicit gene channel in the joint space during training (0: off; needs gene_bridge)"
    )
    query_channel: float | None = setting(
        None,
        "Weight of the gene channel when the trained model encodes; larger leans on the genes a prompt names "
        "(none: 0.7 for a corpus, 0.5 for one AnnData)",
    )

    def __post_init__(self) -> None:
        for name in ("gene_dim", "hidden", "dim"):
            check_whole(getattr(self, name), name, f"ModelConfig.{name}", f"pass a width >= 1, e.g. {getattr(ModelConfig, name)}", 1)
        check_share(self.gene_dropout, "gene_dropout", "ModelConfig.gene_dropout")
        check_share(self.gene_channel, "gene_channel", "ModelConfig.gene_channel")
        if self.query_channel is not None:
            check_share(self.query_channel, "query_channel", "ModelConfig.query_channel")

    @property
    def encoding_weight(self) -> float:
        """The gene channel's weight when encoding: ``query_channel``, else the one-AnnData default."""
        return ANNDATA_DEFAULTS.query_channel if self.query_channel is None else self.query_channel

    @property
    def channel_on(self) -> bool:
        """Whether the model has a gene channel (query_channel applies only then)."""
        return self.gene_bridge and self.gene_channel > 0


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of the optimisation (:func:`mmgene.align.train`)."""

    loss: str = setting(
        "clip",
        "'clip': symmetric InfoNCE, learnable temperature, same-class pairs masked; 'mnrl': sentence-transformers' "
        "MultipleNegativesSymmetricRankingLoss, fixed scale 1/temperature, masks nothing",
    )
    temperature: float = setting(0.07, "Initial temperature of the loss (fixed with 'mnrl')")
    epochs: float = setting(3.0, "Training epochs")
    max_steps: int = setting(-1, "Stop after this many steps (overrides epochs; -1: off)")
    batch_size: int = setting(
        128, "Training rows per batch (the global batch: under torchrun each of N processes takes batch_size / N rows)"
    )
    learning_rate: float = setting(2e-3, "AdamW learning rate (cosine schedule, 5% warm-up)")
    hard_negatives: int | None = setting(
        None,
        "K > 0: train in rounds; after each, give every training row a caption of another class drawn from the K "
        "the model as trained so far scores closest (0: off; none: 5 for a corpus in memory, 0 for one AnnData "
        "and for a streamed corpus)",
    )
    mine_every: int = setting(0, "With hard_negatives: steps per round (0: one epoch)")
    eval_steps: int = setting(
        0, "Zero-shot evaluation of the test cells every this many steps (0: once per epoch, or per round with hard_negatives)"
    )
    seed: int = setting(0, "Random seed of the split, the pairs, the initial weights and the training order")
    device: str = setting("auto", "Where to train: 'auto' (a CUDA GPU when there is one, else the CPU), 'cpu' or 'cuda'")
    precision: str = setting("fp32", "'fp32', or autocast in 'bf16' or 'fp16' (CUDA only)")

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ParameterError(f"loss must be 'clip' or 'mnrl', got {self.loss!r}", "TrainingConfig.loss")
        if self.device not in DEVICES:
            raise ParameterError(
                f"device must be one of {DEVICES}, got {self.device!r}",
                "TrainingConfig.device",
                "pass 'cuda' (torchrun gives each process its own GPU) or 'cpu'",
            )
        if self.precision not in PRECISIONS:
            raise ParameterError(f"precision must be one of {PRECISIONS}, got {self.precision!r}", "TrainingConfig.precision")
        if self.hard_negatives is not None:
            check_whole(
                self.hard_negatives,
                "hard_negatives",
                "TrainingConfig.hard_negatives",
                "pass 0 (off) or K >= 1: the number of closest other-class captions to draw each negative from",
            )
        check_whole(self.mine_every, "mine_every", "TrainingConfig.mine_every", "pass 0 (every epoch) or a step count")
        check_whole(self.eval_steps, "eval_steps", "TrainingConfig.eval_steps", "pass 0 (every epoch) or a step count")
        check_whole(self.seed, "seed", "TrainingConfig.seed", "pass e.g. 0")
        check_whole(self.batch_size, "batch_size", "TrainingConfig.batch_size", "pass e.g. 128", 2)
        if self.max_steps != -1:
            check_whole(self.max_steps, "max_steps", "TrainingConfig.max_steps", "pass a step count >= 1, or -1 to let epochs decide", 1)
        for name, fix in (("epochs", "pass e.g. 3 (a fraction trains part of an epoch)"), ("learning_rate", "pass e.g. 2e-3"),
                          ("temperature", "pass e.g. 0.07")):
            value = getattr(self, name)
            check_range(value, name, f"TrainingConfig.{name}", 0.0, None, strict=True, fix=fix)


@dataclass(frozen=True)
class CorpusTrainingConfig:
    """How :func:`mmgene.align.train_corpus` combines the datasets of a corpus into one training set."""

    rows_per_dataset: int = setting(
        0,
        "Training rows drawn from each dataset, spread evenly over its classes (seeded; rows repeat when a class has "
        "fewer); 0: the median of the datasets' training rows",
    )
    mask_related: bool = setting(
        True, "Keep pairs of classes whose Cell Ontology terms are ancestor and descendant out of the loss's negatives"
    )
    drop_contradicted: bool | None = setting(
        None,
        "Leave out of training the cells whose label the corpus's other datasets of the same species contradict "
        "(mmgene.corpus.consensus: a logistic regression on them calls the cell another of its dataset's types); "
        f"none: {CORPUS_DEFAULTS.drop_contradicted} in memory, {STREAMED_DEFAULTS.drop_contradicted} streamed "
        "(where it costs three more reads of every dataset)",
    )
    members: int | None = setting(
        None,
        "Models trained alike with seeds seed, seed+1, ... and used as one (mmgene.align.ensemble: each recentred, "
        "their cosines averaged); each costs one more training, less the frozen text model's work, which they "
        f"share (none: {CORPUS_DEFAULTS.members} in memory, {STREAMED_DEFAULTS.members} streamed)",
    )

    def __post_init__(self) -> None:
        check_whole(
            self.rows_per_dataset,
            "rows_per_dataset",
            "CorpusTrainingConfig.rows_per_dataset",
            "pass 0 (the median dataset) or a row count",
        )
        if self.members is not None:
            check_whole(self.members, "members", "CorpusTrainingConfig.members", "pass 1 (one model) or more", 1)

    def resolved(self, defaults: TrainerDefaults) -> CorpusTrainingConfig:
        """This config with ``members`` and ``drop_contradicted`` set to the trainer's defaults where left to it (``None``)."""
        return replace(
            self,
            members=defaults.members if self.members is None else self.members,
            drop_contradicted=defaults.drop_contradicted if self.drop_contradicted is None else self.drop_contradicted,
        )


@dataclass(frozen=True)
class AlignConfig:
    """The three configs a model was trained with, as saved in ``mmgene_align.json['config']``."""

    pairs: PairsConfig = field(default_factory=PairsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return asdict(self)

    def resolved(self, defaults: TrainerDefaults) -> AlignConfig:
        """This config with the settings left to the trainer (``None``) set to ``defaults``, as a model records them."""
        model, training = self.model, self.training
        if model.query_channel is None:
            model = replace(model, query_channel=defaults.query_channel)
        if training.hard_negatives is None:
            training = replace(training, hard_negatives=defaults.hard_negatives)
        return AlignConfig(self.pairs, model, training)

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> AlignConfig:
        """Read back :meth:`to_dict`; a missing or unknown section or field is a ParameterError."""
        if not isinstance(data, dict) or set(data) != {"pairs", "model", "training"}:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ParameterError(f"{where} must have the sections ['model', 'pairs', 'training'], got {got}", where)
        return cls(
            pairs=from_dict(PairsConfig, data["pairs"], f"{where}.pairs"),
            model=from_dict(ModelConfig, data["model"], f"{where}.model"),
            training=from_dict(TrainingConfig, data["training"], f"{where}.training"),
        )
