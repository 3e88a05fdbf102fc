"""Text similarity of a label to every ontology name, for labels no rewrite turns into an exact name.

Two scores, vectorised over all names at once, and the larger one counts:

- **word overlap**: F-score of the two word sets with IDF weights (rare words such as "cd56^bright"
  or "podocyte" count more than "cell" or "positive") and recall weighted over precision, so
  "naive CD4 T" is close to "naive thymus-derived CD4-positive, alpha-beta T cell";
- **character n-grams**: cosine of TF-IDF character 3-4-grams (scikit-learn), which forgives spelling
  ("megacaryocyte") and word forms ("monocytic") that word overlap misses, scaled by :data:`CHAR_WEIGHT`.

Optionally (``use_text_model``) the offline MiniLM sentence model adds a paraphrase score
(:data:`TEXT_MODEL_FLOOR`..1 cosine mapped to 0..1, scaled by :data:`TEXT_MODEL_WEIGHT`); its vectors
of the ontology names are cached on disk by :mod:`mmgene.text.encoders`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from mmgene.harmonise.text import FILLER
from mmgene.harmonise.vocabulary import Vocabulary

#: F-beta of the word overlap: recall of the label's words counts this much more than precision, since
#: ontology names carry qualifiers authors leave out ("naive thymus-derived CD4-positive, alpha-beta T cell").
RECALL_BETA = 2.0
#: weight of the character n-gram score against the word overlap score.
CHAR_WEIGHT = 0.85
#: shortest word whose character n-grams are compared (set after looking at the shared corpus's failures:
#: codes such as "N3" matched "DN3 thymocyte" at confidence 0.3; it changed confidences, not accuracy).
MIN_CHAR_WORD = 4
#: MiniLM cosine at or below this counts as no similarity.
TEXT_MODEL_FLOOR = 0.4
#: weight of the MiniLM score against the word overlap score.
TEXT_MODEL_WEIGHT = 0.85


@dataclass
class SimilarityIndex:
    """Word and character-n-gram matrices over all ontology names (rows in ``Vocabulary.names`` order)."""

    columns: dict[str, int]
    idf: np.ndarray
    words: Any
    weight: np.ndarray
    vectorizer: Any
    chars: Any
    texts: list[str]

    def word_scores(self, words: list[str] | tuple[str, ...]) -> np.ndarray:
        """IDF-weighted F-score (recall of the label's words weighted by :data:`RECALL_BETA`) against every name."""
        query = {w for w in words if w not in FILLER}
        known = [self.columns[w] for w in query if w in self.columns]
        unknown = len(query) - len(known)
        query_weight = float(self.idf[known].sum()) + unknown * float(self.idf.max())
        if not known or query_weight <= 0:
            return np.zeros(self.words.shape[0])
        shared = np.asarray(self.words[:, known] @ self.idf[known]).ravel()
        b2 = RECALL_BETA**2
        return (1 + b2) * shared / (b2 * query_weight + self.weight)

    def char_scores(self, texts: list[str]) -> np.ndarray:
        """Largest character-n-gram cosine of any of ``texts`` with every name."""
        query = self.vectorizer.transform(texts)
        return np.asarray((self.chars @ query.T).max(axis=1).todense()).ravel()

    def scores(self, variants: list[tuple[str, ...]]) -> np.ndarray:
        """Best score of any variant against every name: max(word overlap, CHAR_WEIGHT x char cosine)."""
        best = np.zeros(self.words.shape[0])
        for words in variants:
            np.maximum(best, self.word_scores(words), out=best)
        # n-grams of a short code ("N3", "AP1") match anything; only words of MIN_CHAR_WORD letters or more count
        texts = [" ".join(w for w in words if w not in FILLER and len(w) >= MIN_CHAR_WORD) for words in variants]
        np.maximum(best, CHAR_WEIGHT * self.char_scores([t for t in texts if t] or [""]), out=best)
        return best


@lru_cache(maxsize=2)
def similarity_index(vocab: Vocabulary) -> SimilarityIndex:
    """Build the matrices once per vocabulary (about a second)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    columns: dict[str, int] = {}
    rows, cols = [], []
    for i, name in enumerate(vocab.names):
        for w in set(name.words) - FILLER:
            rows.append(i)
            cols.append(columns.setdefault(w, len(columns)))
    words = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(vocab.names), len(columns)))
    df = np.asarray(words.sum(axis=0)).ravel()
    idf = np.log((1 + len(vocab.names)) / (1 + df)) + 1.0
    texts = [" ".join(w for w in name.words if w not in FILLER) for name in vocab.names]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), sublinear_tf=True, dtype=np.float32)
    chars = vectorizer.fit_transform(texts)
    weight = np.asarray(words @ idf).ravel()
    return SimilarityIndex(columns, idf, words.tocsc(), weight, vectorizer, chars, texts)


def text_model_scores(vocab: Vocabulary, texts: list[str]) -> np.ndarray:
    """MiniLM paraphrase score of the best of ``texts`` against every name, mapped to 0..1."""
    from mmgene.text.encoders import text_encoder

    encoder = text_encoder("minilm")
    names = encoder.encode(similarity_index(vocab).texts)
    query = encoder.encode(texts)
    cosine = (names @ query.T).max(axis=1)
    return np.clip((cosine - TEXT_MODEL_FLOOR) / (1.0 - TEXT_MODEL_FLOOR), 0.0, 1.0)
