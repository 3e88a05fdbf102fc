"""Several aligned models trained alike (seeds ``seed``, ``seed + 1``, ...) used as one joint space.

Models trained on the same corpus with different seeds agree on the cell types they learned well and
disagree, each in its own way, on the rest: on a dataset none of them saw, one seed's model can be far
better or worse than the next (``docs/benchmarks.md``). An ensemble averages that out. Its joint space
is the members' spaces side by side: a text or a cell is each member's unit vector scaled by
``1 / sqrt(members)`` and concatenated, so the vector has unit length and a cosine in it is the mean of
the members' cosines. Everything that takes a joint space (FAISS indexes, queries, ``annotate``,
``evaluate``) takes an ensemble unchanged. Label scores are z-scored member by member and averaged
(:func:`mmgene.query.scoring.label_similarities`), so a member whose cosines spread little counts as much
as one whose cosines spread widely. Recentring (:mod:`mmgene.align.recentre`) moves each
member's cells onto that member's own training mean.

A saved ensemble is a folder with :data:`ENSEMBLE_FILE` and one model folder per member (``member-0``,
``member-1``, ...); a frozen text model, the same in every member, is kept once beside them
(:data:`SHARED_TEXT_MODEL`), loaded once, and embeds each text once for all members.
:func:`mmgene.align.load` checks each member, and the shared text model, as it checks any model.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mmgene.errors import ModelError, ParameterError

#: the file that makes a folder an ensemble: its member folders and the ensemble's metadata
ENSEMBLE_FILE = "mmgene_ensemble.json"
#: a member folder's name: ``member-<index>``, directly inside the ensemble folder
MEMBER_NAME = re.compile(r"member-\d{1,4}")
#: the folder, beside the members, of the text model they share when it is the same in all (a frozen one)
SHARED_TEXT_MODEL = "text_encoder"
#: metadata that belongs to one member (its run, held-out figures and training mean), kept per member
PER_MEMBER = ("path", "eval_history", "run", "temperature", "learned_mean", "train_seconds", "test_cells", "split", "config")


def member_seeds(seed: int, members: int) -> list[int]:
    """The seeds of an ensemble trained with ``seed``: ``seed, seed + 1, ...`` (member 0 is the one-model run)."""
    return [seed + i for i in range(members)]


def train_members(train_one: Callable[[Any, Any], Any], config: Any, members: int) -> Any:
    """``train_one(config, shared_text)`` once per member, the training seed stepped (:func:`member_seeds`);
    one member is the model itself, more are an :class:`EnsembleModel`. ``config`` is an
    :class:`~mmgene.align.config.AlignConfig`; the members share one frozen text model
    (:class:`~mmgene.align.shared_text.SharedText`), so each text is embedded once for all of them."""
    from mmgene.align.shared_text import SharedText
    from mmgene.progress import info

    models, text = [], SharedText()
    for i, seed in enumerate(member_seeds(config.training.seed, members)):
        if members > 1:
            info(f"ensemble member {i + 1} of {members} (seed {seed})")
        models.append(train_one(replace(config, training=replace(config.training, seed=seed)), text))
    return models[0] if members == 1 else EnsembleModel(models)


class EnsembleModel:
    """Aligned models used as one joint space (see the module docstring).

    Attributes
    ----------
    members
        The :class:`~mmgene.align.model.AlignedModel` of each member, member 0 trained with the base seed.
    meta
        Member 0's metadata without what belongs to one run (classes, datasets and recipe are shared),
        plus ``members`` (each one's seed, training time and held-out figures) and their total ``train_seconds``.
    """

    def __init__(self, members: Sequence[Any], meta: dict[str, Any] | None = None) -> None:
        members = list(members)
        if len(members) < 2:
            raise ParameterError(f"an ensemble needs at least two members, got {len(members)}", "EnsembleModel", "use the model itself")
        from mmgene.align.cell_chunks import shared_inputs

        shared_inputs(members)  # the members read each chunk's inputs made once
        _share_text_caches(members)
        self.members = members
        self.meta = dict(meta) if meta is not None else _shared_meta(members)

    @property
    def inputs(self) -> list[str]:
        return list(self.members[0].inputs)

    @property
    def config(self) -> Any:
        """Member 0's :class:`~mmgene.align.config.AlignConfig` (the members differ only in their seed)."""
        return self.members[0].config

    @property
    def dim(self) -> int:
        return int(sum(m.dim for m in self.members))

    @property
    def genes(self) -> list[str]:
        """The gene symbols any member knows, in first-seen order."""
        return list(dict.fromkeys(g for m in self.members for g in m.genes))

    @property
    def training_mean(self) -> np.ndarray | None:
        """The members' training means side by side (None unless every member stores one): cells can be
        recentred only when each member can recentre its own."""
        means = [m.training_mean for m in self.members]
        return None if any(v is None for v in means) else np.concatenate(means)

    def describe(self) -> dict[str, Any]:
        """The :class:`~mmgene.query.space.JointSpace` description, with the number of members."""
        return {"model": str(self.meta.get("path", "")), "inputs": self.inputs, "members": len(self.members)}

    def _joined(self, parts: list[np.ndarray]) -> np.ndarray:
        return (np.concatenate(parts, axis=1) / np.float32(math.sqrt(len(parts)))).astype(np.float32)

    def member_vectors(self, vectors: np.ndarray) -> list[np.ndarray]:
        """Each member's unit vectors out of joint-space ``vectors`` (cells or texts), the joining undone:
        what label scoring z-scores member by member (:func:`mmgene.query.scoring.label_similarities`)."""
        from mmgene.text.classes import unit_rows

        vectors = np.asarray(vectors)
        bounds = np.cumsum([0] + [m.dim for m in self.members])
        if vectors.ndim != 2 or vectors.shape[1] != bounds[-1]:
            raise ParameterError(f"vectors of shape {vectors.shape} are not this ensemble's (dimension {bounds[-1]})",
                                 "EnsembleModel.member_vectors", "pass vectors the ensemble encoded")
        return [unit_rows(vectors[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def with_channel_genes(self, genes: Sequence[str]) -> tuple[EnsembleModel, int]:
        """The ensemble with ``genes`` added to every member's gene channel, and how many joined (summed
        over the members; :mod:`mmgene.align.data_genes`)."""
        from mmgene.align.data_genes import with_channel_genes

        return with_channel_genes(self, genes)

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """L2-normalised float32 vectors of ``texts``: each member's, scaled and concatenated."""
        return self._joined([m.encode_text(texts, batch_size=batch_size) for m in self.members])

    def encode_cells(
        self, adata: Any, *, batch_size: int = 256, key_added: str | None = None, copy: bool = False, recentre: bool = False
    ) -> Any:
        """As :meth:`~mmgene.align.model.AlignedModel.encode_cells`: each member encodes the cells (with
        ``recentre``, onto its own training mean; each chunk's inputs made once for all members,
        :mod:`mmgene.align.cell_chunks`) and the vectors are joined (see the module docstring)."""
        from mmgene.align.encoding import check_copy, encode_parts, keep_vectors

        check_copy(copy, key_added)
        parts = encode_parts(self.members, adata, batch_size=batch_size, recentre=recentre)
        if parts is None:  # another rank of a launcher's job: rank 0 holds the vectors
            return None
        return keep_vectors(
            adata, self._joined(parts), key_added=key_added, copy=copy, recentre=recentre, model=self.meta.get("path", ""),
            inputs=self.inputs, members=len(self.members),
        )

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the ensemble folder atomically: each member's model folder, :data:`ENSEMBLE_FILE` and the
        model card as ``README.md``. An existing ``path`` is replaced only with ``overwrite=True`` and only
        if mmgene wrote it."""
        from mmgene.align.card import render_model_card
        from mmgene.atomic import atomic_path
        from mmgene.distributed import is_main

        target = Path(path)
        if not is_main():
            self.meta["path"] = str(target)
            return target
        names = [f"member-{i}" for i in range(len(self.members))]
        with atomic_path(target, overwrite=overwrite) as tmp:
            for member, name in zip(self.members, names):
                member.write_folder(tmp / name, target / name)  # its card loads it from where it will be
            listing: dict[str, Any] = {"members": names}
            if share_text_model(tmp, names):
                listing["text_model"] = SHARED_TEXT_MODEL
            listing["meta"] = {k: v for k, v in self.meta.items() if k != "path"}
            (tmp / ENSEMBLE_FILE).write_text(json.dumps(listing, indent=2, default=str), encoding="utf-8")
            (tmp / "README.md").write_text(render_model_card(self, str(target)), encoding="utf-8")
        for member, name in zip(self.members, names):
            member.meta["path"] = str(target / name)
        self.meta["path"] = str(target)
        return target

    def push_to_hub(self, repo_id: str, *, token: str | None = None, private: bool = True, commit_message: str = "Upload mmgene aligned model") -> str:
        """Upload the ensemble folder with its model card, as :meth:`~mmgene.align.model.AlignedModel.push_to_hub` does."""
        from mmgene.align.hub import push_model

        return push_model(self, repo_id, token=token, private=private, commit_message=commit_message)


def _share_text_caches(members: Sequence[Any]) -> None:
    """Members loaded with one shared frozen text model embed each text once for all of them (the
    text cache of member 0, :meth:`~mmgene.align.modules.text_input.TextInput.share_cache`); members
    with text models of their own keep their own caches."""
    from mmgene.align.modules.text_input import TextInput
    from mmgene.align.shared_text import SharedText

    towers = [next((m for m in member.st.modules() if isinstance(m, TextInput)), None) for member in members]
    if all(t is not None for t in towers):
        shared = SharedText()
        for tower in towers:
            shared.join(tower)


def eval_histories(meta: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The held-out evaluation history of each member of an ensemble's metadata, or of one model's as
    the only entry: what reports and cards show as training figures."""
    members = meta.get("members")
    if members:
        return [list(m.get("eval_history") or []) for m in members]
    return [list(meta.get("eval_history") or [])]


def _text_model_folder(member: Path) -> Path | None:
    """The folder of a saved member's text model (``<TextInput module>/encoder``), None if it has not one."""
    from mmgene.align.modules.text_input import ENCODER_FOLDER, TextInput

    found = sorted(p.parent / ENCODER_FOLDER for p in member.glob(f"*/{TextInput.config_file_name}") if (p.parent / ENCODER_FOLDER).is_dir())
    return found[0] if len(found) == 1 else None


def _same_files(a: Path, b: Path) -> bool:
    """Whether two folders hold the same files (relative paths and bytes), compared without loading them whole."""
    import filecmp

    files = [sorted(p.relative_to(f).as_posix() for p in f.rglob("*") if p.is_file()) for f in (a, b)]
    return files[0] == files[1] and all(filecmp.cmp(a / name, b / name, shallow=False) for name in files[0])


def share_text_model(folder: Path, names: Sequence[str]) -> bool:
    """Keep one copy of the members' text model, in :data:`SHARED_TEXT_MODEL` beside them, when every
    member's is byte for byte the same (a frozen text tower; about 88 MB a member for MiniLM). Returns
    whether it did; members whose text models differ (fine-tuned ones) keep their own."""
    import shutil

    folders = [_text_model_folder(folder / name) for name in names]
    if any(f is None for f in folders):
        return False
    if not all(_same_files(folders[0], f) for f in folders[1:]):
        return False
    shutil.move(str(folders[0]), str(folder / SHARED_TEXT_MODEL))
    for other in folders[1:]:
        shutil.rmtree(other)
    return True


def _shared_meta(members: Sequence[Any]) -> dict[str, Any]:
    """Member 0's metadata without what belongs to its run, and each member's run under ``members``."""
    first = members[0].meta
    meta = {k: v for k, v in first.items() if k not in PER_MEMBER}
    meta["members"] = [
        {
            "seed": m.config.training.seed if m.config is not None else None,
            "train_seconds": m.meta.get("train_seconds"),
            "eval_history": m.meta.get("eval_history") or [],
        }
        for m in members
    ]
    seconds = [m.meta.get("train_seconds") for m in members]
    meta["train_seconds"] = round(sum(seconds), 1) if all(isinstance(s, (int, float)) for s in seconds) else None
    return meta


def member_folders(folder: Path) -> tuple[list[Path], Path | None, dict[str, Any]]:
    """The member folders an ensemble folder lists (checked: ``member-<i>`` folders directly inside it, no
    links), the folder of the text model they share (None when each has its own) and the ensemble's
    metadata; anything else is a :class:`~mmgene.errors.ModelError`."""
    from mmgene.model_files import read_json

    path = folder / ENSEMBLE_FILE
    data = read_json(path)
    names = data.get("members") if isinstance(data, dict) else None
    meta = data.get("meta", {}) if isinstance(data, dict) else None
    if not isinstance(names, list) or len(names) < 2 or not isinstance(meta, dict):
        raise ModelError(f"{ENSEMBLE_FILE} must list at least two members and hold a 'meta' object", str(path),
                         "use an unmodified folder written by `mmgene train --corpus`")
    folders = []
    for name in names:
        member = folder / str(name)
        if not isinstance(name, str) or not MEMBER_NAME.fullmatch(name) or member.is_symlink() or not member.is_dir():
            raise ModelError(f"{ENSEMBLE_FILE} lists {str(name)[:80]!r}, which is not a member folder (member-<i>) inside the ensemble",
                             str(path), "use an unmodified folder written by `mmgene train --corpus`")
        folders.append(member)
    if len(set(names)) != len(names):
        raise ModelError(f"{ENSEMBLE_FILE} lists a member twice", str(path), "use an unmodified folder written by `mmgene train --corpus`")
    shared = data.get("text_model")
    if shared is None:
        return folders, None, meta
    text_model = folder / SHARED_TEXT_MODEL
    if shared != SHARED_TEXT_MODEL or text_model.is_symlink() or not text_model.is_dir():
        raise ModelError(f"{ENSEMBLE_FILE} names the shared text model {str(shared)[:80]!r}, which is not the folder "
                         f"{SHARED_TEXT_MODEL!r} inside the ensemble", str(path), "use an unmodified folder written by `mmgene train --corpus`")
    return folders, text_model, meta
