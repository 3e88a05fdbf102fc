"""One frozen text model for models trained one after another, so that each text is embedded once.

An ensemble's members (:func:`mmgene.align.ensemble.train_members`) differ in their seed, not in their
text model: with a frozen text tower every member would load the same MiniLM and embed the same
captions and gene texts again, about half of a member's training time on a CPU. :class:`SharedText`
holds the encoder, the caption cache of the first member's text tower and the gene-text bridge's
vectors, and :func:`mmgene.align.model.build_model` takes them from it. The first member embeds exactly
as it would alone; later members read what it embedded (the same texts, the same vectors) and embed
only what is new to them. A trainable text tower is never shared: each member fine-tunes its own.
The members of a loaded ensemble, which wrap one text model, join their caches the same way
(:meth:`SharedText.join`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SharedText:
    """The frozen text encoder of models trained in turn, the first one's text tower and its bridge vectors.

    Attributes
    ----------
    encoder
        The loaded text model (``None`` until the first model is built), and ``spec`` what it was loaded from.
    tower
        The first :class:`~mmgene.align.modules.text_input.TextInput` joined; later towers use its cache.
    bridge
        Unit vectors of the gene texts embedded so far (:func:`mmgene.align.model.gene_text_bridge`), by text.
    """

    encoder: Any = None
    spec: Any = None
    tower: Any = None
    bridge: dict[str, np.ndarray] = field(default_factory=dict)

    def encoder_for(self, spec: Any, load: Any) -> Any:
        """The encoder loaded once by ``load(spec)``; a model asking for another text model gets its own."""
        if self.encoder is None:
            self.encoder, self.spec = load(spec), spec
        return self.encoder if spec == self.spec else load(spec)

    def bridge_of(self, encoder: Any) -> dict[str, np.ndarray] | None:
        """The gene-text vectors embedded so far when ``encoder`` is the shared one (else None: not comparable)."""
        return self.bridge if encoder is self.encoder else None

    def join(self, tower: Any) -> bool:
        """Let ``tower`` use the first tower's text cache (the first one becomes it); returns whether it shares."""
        if self.tower is None:
            self.tower = tower
            return False
        return bool(tower.share_cache(self.tower))
