"""Pick a gene text source by name: ``'offline'``, ``'ncbi'``, or a file.

The factory lives apart from :mod:`mmgene.genes.text_sources` (the interface), so that the sources
import the interface and this module imports the sources, never the other way round.
"""

from __future__ import annotations

import os
from pathlib import Path

from mmgene.errors import ParameterError
from mmgene.genes.text_sources import GeneTextSource


def gene_text_source(spec: str | os.PathLike[str] | GeneTextSource = "offline", **kwargs) -> GeneTextSource:
    """Pick a source: ``'offline'`` (the NCBI gene table shipped with mmgene), ``'ncbi'`` (E-utilities), or a JSON/TSV file.

    Keyword arguments go to the source (e.g. ``email=``, ``api_key=`` for NCBI).
    """
    if isinstance(spec, GeneTextSource):
        return spec
    text = str(spec)
    if text == "offline":
        from mmgene.genes.offline_text import OfflineGeneText

        return OfflineGeneText(**kwargs)
    if text == "ncbi":
        from mmgene.genes.ncbi import NCBIGeneText

        return NCBIGeneText(**kwargs)
    if Path(text).suffix.lower() in (".json", ".tsv", ".txt", ".csv") or Path(text).exists():
        from mmgene.genes.user_text import UserGeneText

        return UserGeneText(text, **kwargs)
    raise ParameterError(
        f"unknown gene text source {text!r}",
        "argument source",
        "use 'offline', 'ncbi', or the path of a JSON ({symbol: text}) or TSV (symbol<TAB>text) file",
    )
