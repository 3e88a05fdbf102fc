"""How single-cell authors write cell types: the shorthand tables behind the label harmoniser
(:mod:`mmgene.harmonise.rules`) and the caption cleaner (:func:`mmgene.text.labels.clean_label`).

Where the entries come from: general usage, written down from knowledge of the field, not from the
labels of any dataset mmgene is measured on. In particular

- immunology shorthand as used in textbooks and in the label sets of widely used references
  (Seurat/Azimuth PBMC and bone-marrow references, CellTypist's immune models, the Human Cell Atlas and
  Tabula Sapiens annotations): Mono, NK, DC/pDC/cDC/mDC, MK, HSC/HSPC/MPP/CMP/GMP/CLP, Treg, Tfh,
  Th1/2/17, TCM/TEM/TEMRA/TRM, MAIT, gdT, ILC, Eryth, Plt; human cDC1 = CD141+ (BDCA-3) and cDC2 = CD1c+
  (BDCA-1) myeloid dendritic cells, also written DC1/DC2 (Villani et al., Science 2017), which the
  table reads so over the ontology's older synonym "DC2" for plasmacytoid dendritic cells;
- marker genes written for their CD antigen (HGNC symbols: FCGR3A = CD16, MS4A1 = CD20, NCAM1 = CD56,
  IL2RA = CD25, ...);
- common histology shorthand (Endo/EC, Fib, SMC, Peri, Epi, Hep, AT1/AT2, OPC, Oligo, Astro, RG, NPC)
  and tissue-specific shorthand that only applies with that tissue hint (kidney PT/DCT/CD/PC/IC/LOH,
  liver HSC = hepatic stellate cell and KC = Kupffer cell, skin KC = keratinocyte, islet gamma = PP cell,
  gut TA = transit amplifying and EEC = enteroendocrine cell, heart vCM/aCM = ventricular/atrial
  cardiomyocyte, lung AM/IM = alveolar/interstitial macrophage);
- labels that name no cell type (Unknown, Doublets, low quality) and cell states the ontology rarely
  encodes (activated, cycling, stimulated).

Added after looking at the shared corpus's failures (so not independent of it):

- the table of one-marker labels (``MARKER_POPULATIONS``), written after pbmc68k_reduced's "CD34+" had
  matched "common myeloid progenitor, CD34-positive" by spelling alone;
- ``"reg"`` -> "regulatory" ("T Reg" had matched the synonym "T(reg)" of a CD8 regulatory T cell). It
  changed which child of "regulatory T cell" is chosen, not the measured accuracy;
- the brain table (cortical-development shorthand: AP/BP apical and basal progenitors, aRG/vRG/oRG/bRG
  radial glia, IPC, N for neurons, ...), written after seeing that the fetal neocortex dataset's labels
  (N1-N3, AP1/2, BP1/2) stayed unmapped. The conventions are the field's, but the choice to write them
  down came from that dataset.

Keys are normalised tokens (lower case, see :mod:`mmgene.harmonise.text`); values are ontology words.
"""

from __future__ import annotations

# fmt: off
#: shorthand -> ontology words, for any tissue.
ABBREVIATIONS: dict[str, str] = {
    # myeloid
    "mono": "monocyte", "monos": "monocyte", "mo": "monocyte", "monocytic": "monocyte",
    "cmono": "classical monocyte", "cmo": "classical monocyte", "ncmono": "non classical monocyte",
    "ncmo": "non classical monocyte", "ncm": "non classical monocyte", "intmono": "intermediate monocyte",
    "mac": "macrophage", "macs": "macrophage", "macro": "macrophage", "mphi": "macrophage",
    "neu": "neutrophil", "neut": "neutrophil", "neutro": "neutrophil", "pmn": "neutrophil",
    "eos": "eosinophil", "eosino": "eosinophil", "baso": "basophil", "gran": "granulocyte", "granulo": "granulocyte",
    "dc": "dendritic", "pdc": "plasmacytoid dendritic", "cdc": "conventional dendritic", "mdc": "myeloid dendritic",
    "modc": "monocyte derived dendritic", "cdc1": "cd141+ myeloid dendritic", "cdc2": "cd1c+ myeloid dendritic",
    "dc1": "cd141+ myeloid dendritic", "dc2": "cd1c+ myeloid dendritic",  # Villani et al. 2017, CellTypist
    "mk": "megakaryocyte", "mega": "megakaryocyte", "megak": "megakaryocyte", "megakaryo": "megakaryocyte",
    "plt": "platelet", "ery": "erythrocyte", "eryth": "erythrocyte", "erythro": "erythrocyte",
    # lymphoid
    "nk": "natural killer", "nkt": "mature nk t", "ilc": "innate lymphoid", "ilc1": "group 1 innate lymphoid",
    "ilc2": "group 2 innate lymphoid", "ilc3": "group 3 innate lymphoid",
    "treg": "regulatory t", "reg": "regulatory", "tfh": "t follicular helper", "th": "helper t",
    "tcm": "central memory t", "tem": "effector memory t",
    "temra": "effector memory cd45ra+ t terminally differentiated",
    "trm": "tissue resident memory t", "mait": "mucosal associated invariant t", "ctl": "cytotoxic t",
    "gdt": "gamma delta t", "tgd": "gamma delta t", "gd": "gamma delta", "gammadelta": "gamma delta",
    "mz": "marginal zone", "mem": "memory", "eff": "effector", "cyto": "cytotoxic", "tox": "cytotoxic", "prolif": "proliferating",
    "bcell": "b", "tcell": "t", "nkcell": "natural killer", "gc": "germinal center",
    "hsc": "hematopoietic stem", "hspc": "hematopoietic precursor", "mpp": "hematopoietic multipotent progenitor",
    "lmpp": "lymphoid primed multipotent progenitor", "cmp": "common myeloid progenitor",
    "gmp": "granulocyte monocyte progenitor", "clp": "common lymphoid progenitor", "prog": "progenitor",
    # stromal, epithelial, neural
    "endo": "endothelial", "ec": "endothelial", "endothelium": "endothelial", "lec": "lymphatic endothelial",
    "fib": "fibroblast", "fibro": "fibroblast", "myofib": "myofibroblast",
    "smc": "smooth muscle", "vsmc": "vascular smooth muscle", "peri": "pericyte",
    "tumor": "malignant", "tumour": "malignant", "cancer": "malignant", "immune": "leukocyte",
    "epi": "epithelial", "epith": "epithelial", "hep": "hepatocyte", "chol": "cholangiocyte",
    "at1": "pulmonary alveolar type 1", "at2": "pulmonary alveolar type 2",
    "ati": "pulmonary alveolar type 1", "atii": "pulmonary alveolar type 2",
    "opc": "oligodendrocyte precursor", "oligo": "oligodendrocyte", "olig": "oligodendrocyte",
    "astro": "astrocyte", "micro": "microglial", "microglia": "microglial", "rg": "radial glial",
    "npc": "neural progenitor", "exn": "glutamatergic neuron", "excitatory": "glutamatergic",
    "inn": "gabaergic neuron", "inhibitory": "gabaergic", "cm": "cardiac muscle",
}

#: shorthand that means something only in one tissue (tissue name of :mod:`.tissue` -> shorthand -> words).
TISSUE_ABBREVIATIONS: dict[str, dict[str, str]] = {
    "kidney": {
        "pt": "proximal tubule epithelial", "dct": "distal convoluted tubule epithelial", "cd": "collecting duct",
        "cnt": "connecting tubule", "loh": "loop henle epithelial", "tal": "loop henle thick ascending limb epithelial",
        "pc": "principal", "ic": "intercalated", "podo": "podocyte",
    },
    # developing and adult cortex (Florio & Huttner 2014 and later atlases): apical progenitors are
    # ventricular radial glia; basal progenitors (intermediate progenitors and basal radial glia) have no
    # term of their own, so "neural progenitor"; "N" a neuron
    "brain": {
        "ap": "radial glial", "arg": "radial glial", "vrg": "radial glial", "org": "radial glial",
        "brg": "radial glial", "trg": "radial glial", "bp": "neural progenitor", "ip": "neural progenitor",
        "ipc": "neural progenitor", "nsc": "neural stem", "nb": "neuroblast", "n": "neuron", "neu": "neuron",
        "ex": "glutamatergic neuron", "exc": "glutamatergic neuron", "inh": "gabaergic neuron", "cr": "cajal retzius",
        "ast": "astrocyte", "mg": "microglial", "ol": "oligodendrocyte", "vlmc": "vascular leptomeningeal",
    },
    "pancreas": {"gamma": "pp", "pp": "pp"},  # islet cell types: alpha, beta, delta, gamma (= PP), epsilon
    "intestine": {"ta": "transit amplifying", "eec": "enteroendocrine"},
    "small intestine": {"ta": "transit amplifying", "eec": "enteroendocrine"},
    "colon": {"ta": "transit amplifying", "eec": "enteroendocrine"},
    "stomach": {"eec": "enteroendocrine"},
    "heart": {"vcm": "regular ventricular cardiac myocyte", "acm": "regular atrial cardiac myocyte"},
    "liver": {"hsc": "hepatic stellate", "kc": "kupffer", "lsec": "hepatic sinusoidal endothelial"},
    "lung": {"am": "alveolar macrophage", "im": "lung interstitial macrophage"},
    "skin": {"kc": "keratinocyte", "mel": "melanocyte"},
}

#: marker genes written for the CD antigen they encode (HGNC symbol -> CD name).
GENE_TO_CD: dict[str, str] = {
    "fcgr3a": "cd16", "fcgr3b": "cd16", "ms4a1": "cd20", "ncam1": "cd56", "ptprc": "cd45", "itgam": "cd11b",
    "itgax": "cd11c", "il3ra": "cd123", "il2ra": "cd25", "cd8a": "cd8", "cd8b": "cd8", "clec4c": "cd303",
    "thbd": "cd141", "sell": "cd62l", "kit": "cd117", "pecam1": "cd31", "cd3e": "cd3", "cd3d": "cd3",
    "b3gat1": "cd57", "klrb1": "cd161",
}

#: words that qualify a T cell; a CD4/CD8 label made only of these and markers is a T cell ("CD8+ Naive").
T_QUALIFIERS = frozenset({
    "naive", "memory", "effector", "cytotoxic", "helper", "regulatory", "central", "exhausted", "resident",
    "activated", "terminally", "differentiated", "proliferating", "cycling",
})

#: the T-cell lineage that atlases mean by a role word when the label names no CD4/CD8 (CellTypist's
#: "Tcm/Naive helper T cells" are CD4, its "Tem/Temra cytotoxic T cells" CD8; Azimuth writes "CD4 CTL"
#: for the exception, which names its marker).
T_ROLE_LINEAGE: dict[str, str] = {"helper": "cd4+", "cytotoxic": "cd8+"}

#: the population a label of one positive marker names: the cells sorted or gated by it in flow
#: cytometry (10x's purified PBMC fractions "CD14+", "CD19+", "CD34+", "CD56+", Zheng et al. 2017).
#: CD34 marks hematopoietic stem and progenitor cells together, hence the ontology's "hematopoietic
#: precursor cell". Markers shared by several lineages (CD16, CD11b, CD11c, CD123) are left out.
MARKER_POPULATIONS: dict[str, str] = {
    "cd3": "t", "cd19": "cd19+ b", "cd20": "b", "cd14": "cd14+ monocyte", "cd56": "natural killer",
    "cd34": "hematopoietic precursor", "cd15": "granulocyte", "cd235a": "erythrocyte", "cd138": "plasma",
    "cd45": "leukocyte", "cd31": "endothelial", "cd68": "macrophage", "cd1c": "cd1c+ myeloid dendritic",
    "cd141": "cd141+ myeloid dendritic", "cd303": "plasmacytoid dendritic", "cd326": "epithelial",
}

#: labels that name no cell type (a cluster left unannotated, a QC category).
NOT_A_CELL_TYPE = frozenset({
    "unknown", "unassigned", "undetermined", "unclassified", "unidentified", "doublet", "doublets", "multiplet",
    "multiplets", "others",
    "low quality", "lowq", "na", "n a", "nan", "none", "other", "mixed", "debris", "ambiguous", "filtered",
    "unlabeled", "unlabelled", "not applicable", "empty", "dying", "dead",
})

#: cell states the ontology rarely encodes; a variant without them is tried at lower confidence.
STATE_WORDS = frozenset({
    "activated", "active", "resting", "quiescent", "stimulated", "unstimulated", "stressed", "proliferating",
    "cycling", "dividing", "ifn", "interferon", "inflamed", "like", "mature", "immature",
})
# fmt: on
