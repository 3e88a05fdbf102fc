"""Corpora: several AnnData sources (files, a manifest, CELLxGENE Census) read as one.

Each dataset keeps its id, species, tissue, label column and own gene set; genes are matched across
datasets by human symbol (mouse genes through :mod:`mmgene.corpus.orthology`). Names load lazily, so
importing this package reads no data and imports neither tiledbsoma nor cellxgene_census.
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "Corpus": "mmgene.corpus.corpus",
    "CorpusDataset": "mmgene.corpus.corpus",
    "CorpusOptions": "mmgene.corpus.corpus",
    "read_corpus": "mmgene.corpus.corpus",
    "DatasetSpec": "mmgene.corpus.sources",
    "read_manifest": "mmgene.corpus.sources",
    "specs_from_paths": "mmgene.corpus.sources",
    "specs_from": "mmgene.corpus.sources",
    "OrthologyMap": "mmgene.corpus.orthology",
    "CensusQuery": "mmgene.corpus.census",
    "census_anndata": "mmgene.corpus.census",
    "select_cells": "mmgene.corpus.census",
    "contradicted_cells": "mmgene.corpus.consensus",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
