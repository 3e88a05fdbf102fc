"""Zero-shot prompts for class names: cleaned names, Cell Ontology names, template ensembles.

For a label such as ``"CD19+ B"`` the ensemble is every template applied to every name:
``"CD19+ B cell"`` (cleaned), the ontology label and synonyms of the core noun ("B cell", "B
lymphocyte") with and without the markers and, with ``markers=True`` (the default), each name with the
label's canonical marker genes spliced in ("a B cell expressing MS4A1 and CD79A", see
:mod:`mmgene.text.markers`; only common blood cell types are covered). The class vector is the
normalised mean of the prompts' joint-space vectors (prompt ensembling as in CLIP,
:func:`mmgene.text.classes.class_vectors`).

Every template names its slot :data:`PLACEHOLDER` (``{label}``), the same slot the hub's caption
templates and the training captions (:mod:`mmgene.text.captions`) use. Given where the cells come from
(:class:`~mmgene.text.origin.Origin`), the default ensemble also says it ("a T cell from mouse lung"),
as the training captions of data with a known tissue do; without it no prompt names a species or tissue.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmgene.errors import ParameterError, cause
from mmgene.text.labels import clean_label, missing_labels, split_markers
from mmgene.text.origin import Origin

#: where a template takes the class name
PLACEHOLDER = "{label}"

#: the templates of the default ensemble (:func:`class_prompts`), applied to every name of a class;
#: the last says where the cells come from and is used only when that is known
PROMPT_TEMPLATES: tuple[str, ...] = (
    "{label}",
    "a {label}",
    "a cell of type {label}",
    "single-cell transcriptome of a {label}",
    "a {label} from {origin}",
)

#: simple templates for a label list taken as written (``mmgene.query.annotate(prompts=PROMPTS)``)
PROMPTS: tuple[str, ...] = (
    "{label}",
    "a {label}.",
    "a cell of type {label}.",
    "a single-cell transcriptome of a {label}.",
    "this cell is a {label}.",
)


#: what :func:`check_templates` fills a template's slot with, to see that the label reaches the prompt
_PROBE = "\x00label\x00"


def _template_problem(template: object) -> str | None:
    """What keeps ``template`` from naming each class in its own prompt, or ``None``: no placeholder,
    a placeholder written as text (``{{label}}``), or a slot or brace that ``str.format`` cannot fill."""
    if not isinstance(template, str) or PLACEHOLDER not in template:
        return f"has no '{PLACEHOLDER}' placeholder"
    try:
        filled = template.format(label=_PROBE, origin="", place="")
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        return f"cannot be filled ({cause(exc)}): its only slots are {PLACEHOLDER}, {{origin}} and {{place}}"
    return None if _PROBE in filled else f"holds '{PLACEHOLDER}' only as text (a doubled brace), so no label reaches it"


def check_templates(templates: Sequence[str], where: str = "prompts") -> list[str]:
    """``templates`` as a list (``[PLACEHOLDER]`` when empty); a template without the placeholder, or one
    ``str.format`` cannot fill with a label, is a :class:`~mmgene.errors.ParameterError`, since it would
    give every class the same prompt or fail later."""
    templates = [templates] if isinstance(templates, str) else list(templates) or [PLACEHOLDER]
    for template in templates:
        problem = _template_problem(template)
        if problem:
            raise ParameterError(f"prompt {template!r} {problem}", where,
                                 f"write prompts like 'a {PLACEHOLDER}.' (a brace that is text is doubled: '{{{{')")
    return templates


def fill_templates(
    templates: Sequence[str], names: Sequence[str], origin: Origin | None = None, where: str = "prompts"
) -> list[str]:
    """Every template applied to every name (names outer, templates inner), each prompt once; a
    template that says an origin ``{origin}``/``{place}`` is skipped unless ``origin`` knows it, and
    names left with no prompt at all (every template needs an origin not given) are a ParameterError."""
    origin = origin or Origin()
    filled = (origin.fill(t, n) for n in names for t in templates)
    prompts = list(dict.fromkeys(p for p in filled if p is not None))
    if names and not prompts:
        raise ParameterError(
            f"every prompt template needs the cells' species and tissue ({templates[0]!r}), and none was given", where,
            "give the cells' origin (species= and tissue=, --species/--tissue), or add a template without {origin}/{place}",
        )
    return prompts


def _has_word(label: object) -> bool:
    """Whether a label has a letter or digit: one of only punctuation names no term, not even "cell"."""
    return any(ch.isalnum() for ch in str(label))


def class_names(label: str, ontology: bool = True, max_names: int = 6) -> list[str]:
    """Names for one label: the cleaned label, then Cell Ontology label/synonyms (with the label's markers).

    A label that is a Cell Ontology id ("CL:0000236") stands for its term's name ("B cell"): a text
    encoder reads nothing in the id itself."""
    from mmgene.text.ontology import term_of_id

    named = term_of_id(label)
    cleaned = clean_label(named.label if named is not None else label)
    names = [cleaned]
    if named is not None:
        names += [n for n in named.names() if n != cleaned] if ontology else []
        return names[:max_names]
    if ontology and _has_word(label):  # "..." cleans to "... cell", which is no reason to add the term "cell"
        from mmgene.text.ontology import find_term

        markers, core = split_markers(cleaned)
        prefix = " ".join(markers)
        for query in dict.fromkeys([cleaned, core]):
            if not query or query == "cell":
                continue
            term = find_term(query)
            if term is None:
                continue
            for name in term.names():
                # keep the markers: a bare "T cell" would blur CD4 and CD8 T cells together
                candidate = f"{prefix} {name}" if prefix and not name.startswith(prefix) else name
                if candidate not in names:
                    names.append(candidate)
    return names[:max_names]


def named_definition(name: str, definition: str) -> str:
    """A definition written after the name it defines, as captions and prompts both write it."""
    return f"{name}: {definition}"


def definition_prompts(label: str) -> list[str]:
    """The Cell Ontology definition of the term ``label`` names (once as is, once after the term's
    label, as training captions write it: "pancreatic A cell: A type A enteroendocrine cell ... that
    secretes glucagon."); none when the cleaned label names no term or the term has no definition."""
    from mmgene.text.ontology import find_term, term_of_id

    term = term_of_id(label) or (find_term(clean_label(label)) if _has_word(label) else None)
    if term is None or not term.description:
        return []
    return [named_definition(term.label, term.description), term.description]


def class_prompts(
    labels: Sequence[str],
    templates: Sequence[str] = PROMPT_TEMPLATES,
    ontology: bool = True,
    markers: bool = True,
    origin: Origin | None = None,
    definitions: bool = False,
) -> list[list[str]]:
    """One list of prompts per label (templates x names, plus templates x names with marker genes).

    ``markers=True`` (default) expands labels the marker table knows (:mod:`mmgene.text.markers`) with
    prompts naming their marker genes; the model's text tower reaches those genes by name. ``origin``
    fills the templates that say where the cells come from (left out without it). ``definitions``
    (with ``ontology``) adds the label's Cell Ontology definition (:func:`definition_prompts`), whose
    words ("secretes glucagon") reach the genes a name alone does not.
    """
    from mmgene.text.markers import MARKER_PHRASES, join_genes, marker_genes

    templates = check_templates(templates, "class_prompts(templates=...)")
    labels = [labels] if isinstance(labels, str) else list(labels)  # one label, not one per character
    blank = [i for i, missing in enumerate(missing_labels(labels)) if missing]
    if blank:  # its prompts would be the bare templates ("a ", "a cell of type "), the same for any class
        raise ParameterError(
            f"label {blank[0]} ({labels[blank[0]]!r}) is missing or blank", "class_prompts(labels=...)",
            "drop cells without a label first, or name the class",
        )
    out = []
    for label in labels:
        names = class_names(label, ontology=ontology)
        if markers:
            genes = marker_genes(names)
            if genes:
                names = names + [p.format(name=n, genes=join_genes(genes)) for n in names for p in MARKER_PHRASES]
        prompts = fill_templates(templates, names, origin, "class_prompts(templates=...)")
        if definitions and ontology:
            prompts += [p for p in definition_prompts(label) if p not in prompts]
        out.append(prompts)
    return out
