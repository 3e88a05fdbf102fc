"""Author cell-type labels -> Cell Ontology terms, with a confidence and a reviewable mapping table.

``harmonise_labels(adata.obs["cell_type"], config=HarmoniseConfig(tissue="pancreas"))`` gives one row
per distinct label (term id and name, confidence, how it was found, alternatives); ``write_mapping``
writes it as CSV for a person to check and edit, ``read_mapping`` reads the edited file back (ids
checked against the ontology) and ``apply_mapping`` writes ids and names into ``obs``. The ontology is
read offline through ``cellxgene-ontology-guide`` (extra ``ontology``). Names resolve lazily.
"""

from __future__ import annotations

from mmgene.lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS = {
    "HarmoniseConfig": "mmgene.harmonise.config",
    "harmonise_labels": "mmgene.harmonise.api",
    "write_mapping": "mmgene.harmonise.table",
    "read_mapping": "mmgene.harmonise.table",
    "validate_mapping": "mmgene.harmonise.table",
    "apply_mapping": "mmgene.harmonise.table",
    "vocabulary": "mmgene.harmonise.vocabulary",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
