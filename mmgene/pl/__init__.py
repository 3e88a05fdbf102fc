"""Plots, scanpy-style (``mmgene.pl`` is to mmgene what ``sc.pl`` is to scanpy).

Cells coloured by a text query's score, predicted next to true labels on an embedding, a confusion
matrix, and the genes behind a hit. The scatter plots are drawn by :func:`scanpy.pl.embedding`; every
function takes ``ax=``, ``show=``, ``save=`` and ``return_fig=`` as scanpy's plotting functions do.
matplotlib and scanpy are imported on first use. (Modules are private, named ``_<plot>``, so that
importing one never hides the function of the same name.)
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "query": "mmgene.pl._query",
    "text_scores": "mmgene.pl._query",
    "labels": "mmgene.pl._labels",
    "class_colors": "mmgene.pl._labels",
    "confusion": "mmgene.pl._confusion",
    "confusion_table": "mmgene.pl._confusion",
    "top_genes": "mmgene.pl._genes",
    "savefig": "mmgene.pl._figure",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
