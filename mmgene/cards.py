"""Render dataset and model cards from the templates in ``mmgene/_cards/`` with real values.

A base module: ``align`` (model cards) and ``hub`` (dataset cards) both render through it.

Templates are Jinja2 text, rendered in Jinja's sandbox (a template from ``MMGENE_CARDS_DIR`` may come
from anyone: it can reach no Python internals, and an oversized ``*``, ``**`` or ``+`` is refused; the sandbox
does not bound memory, so a template can still grow a text in a loop by ``~``, ``join`` or ``replace``).
Rendering is strict: every placeholder a template uses must be given a value that is not ``None``, or
:class:`~mmgene.errors.ParameterError` lists the missing ones; and the template's own text (a raw
block, say) must leave no ``{{``/``{%`` in the card. Values are data and may hold any text, braces
included (a cell-type label such as ``{{x}}`` is shown as it is); in a table, the filters ``cell`` and
``code`` keep a value holding ``|``, backticks or line breaks inside its cell, ``span`` writes a value
as one code span in running text, and ``line`` puts a value (a title) on one line. The YAML metadata block
(license, tags, task categories, size category, configs) is made by huggingface_hub's
``DatasetCardData``/``ModelCardData`` so the Hub reads it, its license one of the Hub's ids
(:data:`HUB_LICENSES`); the final text is checked to hold no registered secret, raw or encoded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmgene.errors import InputFileError, ParameterError
from mmgene.net.credentials import redact

#: the card templates: ``MMGENE_CARDS_DIR``, else ``mmgene/_cards`` (package data, so a wheel install has them)
CARDS_DIR = Path(os.environ.get("MMGENE_CARDS_DIR") or Path(__file__).resolve().parent / "_cards")
_LEFTOVER = re.compile(r"\{\{|\{%|\{#|%\}|\}\}")
SIZE_CATEGORIES = [
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T"),
]


#: the licence ids a card's ``license`` may hold: the Hub's list (https://huggingface.co/docs/hub/repositories-licenses;
#: huggingface_hub ships none), ``other`` for any licence not on it (name it and add its text as LICENSE)
HUB_LICENSES = (
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
    "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0", "cdla-permissive-1.0",
    "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1", "eupl-1.2", "agpl-3.0",
    "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "h-research", "intel-research",
    "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl", "openmdw-1.0", "openrail++",
    "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr", "deepfloyd-if-license",
    "fair-noncommercial-research-license", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4",
    "grok2-community", "gemma", "unknown", "other",
)


def check_license(license: Any, where: str) -> str:  # noqa: A002 - the name of the card field
    """``license`` if it is one of :data:`HUB_LICENSES`, else a ParameterError at ``where`` naming the closest
    ids: a typo would otherwise reach the card's YAML, where the Hub reads it as no licence it knows."""
    import difflib

    if isinstance(license, str) and license in HUB_LICENSES:
        return license
    text = str(license)
    close = list(dict.fromkeys([i for i in HUB_LICENSES if i == text.lower()]
                               + difflib.get_close_matches(text.lower(), HUB_LICENSES, n=3, cutoff=0.6)))
    hint = f"the closest: {', '.join(map(repr, close))}" if close else "e.g. 'apache-2.0', 'mit' or 'cc-by-4.0'"
    raise ParameterError(
        f"{license!r} is not a licence id of the Hugging Face Hub", where,
        f"pass one of its {len(HUB_LICENSES)} ids ({hint}), or 'other' for a licence not on its list; "
        "see https://huggingface.co/docs/hub/repositories-licenses",
    )


def size_category(n_rows: int) -> str:
    """The Hub's ``size_categories`` value for a dataset of ``n_rows`` rows (a power of ten opens the upper bin)."""
    for limit, name in SIZE_CATEGORIES:
        if n_rows < limit:
            return name
    return "n>1T"


def template_path(name: str) -> Path:
    path = CARDS_DIR / name
    if not path.is_file():
        raise InputFileError(f"card template {name} not found", str(CARDS_DIR), "reinstall mmgene, or set MMGENE_CARDS_DIR to a folder holding it")
    return path


def render_template(template: str | os.PathLike[str], values: Mapping[str, Any]) -> str:
    """Render a Jinja2 template file strictly (see the module docstring)."""
    from mmgene.lazy import require

    require("jinja2", "rendering a card")
    import jinja2
    from jinja2 import meta

    path = Path(template)
    if not path.is_file():
        raise InputFileError(f"card template not found: {path}", str(path), "pass an existing template file")
    source = path.read_text()
    env = _environment()
    try:
        wanted = meta.find_undeclared_variables(env.parse(source))
        leftover = next(((line, m.group()) for line, kind, value in env.lex(source) if kind == "data"
                         for m in [_LEFTOVER.search(value)] if m), None)
    except jinja2.TemplateSyntaxError as exc:
        raise ParameterError(f"card template has a syntax error: {exc.message}", f"{path}:{exc.lineno}", "fix the template") from None
    if leftover is not None:
        raise ParameterError(f"the card template would leave template syntax {leftover[1]!r} in the card", f"{path.name} line {leftover[0]}",
                             "fill every placeholder (no raw block around template syntax)")
    missing = sorted(v for v in wanted if values.get(v) is None)
    if missing:
        raise ParameterError(
            f"card template {path.name} has unfilled placeholders: {', '.join(missing)}",
            str(path),
            "pass a value for each of them",
        )
    try:
        text = env.from_string(source).render(**values)
    except jinja2.UndefinedError as exc:
        raise ParameterError(f"card template {path.name} uses a missing value ({exc.message})", str(path), "pass it") from None
    except jinja2.exceptions.SecurityError as exc:
        raise ParameterError(f"card template {path.name} tried something the sandbox forbids ({exc})", str(path),
                             "use only the placeholders, loops and conditions of mmgene's own templates") from None
    except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise ParameterError(f"card template {path.name} failed to render ({type(exc).__name__}: {exc})", str(path), "fix the template") from None
    _refuse_secrets(text, path.name)
    return text


#: the largest string, list or number (in bits) a template's arithmetic may make
_MAX_PRODUCT = 1_000_000


def _environment() -> Any:
    """Jinja's sandboxed environment with strict undefined values, and the arithmetic the sandbox can
    intercept (``*``, ``**``, ``+``) bounded: ``{{ 'x' * 10**12 }}``, or a text doubled in a loop by ``+``,
    is a SecurityError once its result passes ``_MAX_PRODUCT``."""
    import jinja2
    from jinja2 import sandbox
    from jinja2.exceptions import SecurityError

    class CardEnvironment(sandbox.SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                for seq, count in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > _MAX_PRODUCT:
                        raise SecurityError(f"a repetition of {len(seq)} items {count} times is too large")
            elif operator == "+":
                sized = (str, list, tuple)
                if isinstance(left, sized) and isinstance(right, sized) and len(left) + len(right) > _MAX_PRODUCT:
                    raise SecurityError(f"{len(left)} + {len(right)} items is too large")
            elif isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right * max(left.bit_length(), 1) > _MAX_PRODUCT:
                raise SecurityError(f"{left} ** {right} is too large")
            return super().call_binop(context, operator, left, right)

    env = CardEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters.update(cell=table_cell, code=table_code, span=code_span, line=_one_line)
    return env


def _one_line(value: Any) -> str:
    return " ".join(str(value).splitlines())


def table_cell(value: Any) -> str:
    """``value`` as the text of a Markdown table cell: one line, its ``|`` escaped (a column name
    such as ``a|b`` would otherwise split the row)."""
    return _one_line(value).replace("|", "\\|")


def code_span(value: Any) -> str:
    """``value`` as one inline code span: on one line, fenced by one backtick more than its longest run
    of backticks (CommonMark), so no backtick, line break or HTML in it can end the span. It is padded
    with a space where CommonMark would take one off: a text that starts or ends with a backtick, or
    one that starts and ends with a space (``' batch '`` would show as ``batch``). An empty value is
    written as nothing: CommonMark has no empty code span (two backticks are read as two literal
    backticks), and any stand-in (``""``, a placeholder word) would read as the value itself."""
    text = _one_line(value)
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    spaced = text.startswith(" ") and text.endswith(" ") and text.strip(" ") != ""
    pad = " " if text.startswith("`") or text.endswith("`") or spaced else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def table_code(value: Any) -> str:
    """``value`` as an inline code span (:func:`code_span`) in a Markdown table cell, ``|`` escaped."""
    return code_span(value).replace("|", "\\|")


#: characters that Markdown or HTML would read as markup inside a line (``|`` is :func:`table_cell`'s)
_MARKUP = re.compile(r"([\\`*_\[\]<>&!~])")


def plain_text(value: Any) -> str:
    """``value`` on one line with the characters Markdown or HTML would read as markup escaped."""
    return _MARKUP.sub(r"\\\1", _one_line(value))


def _refuse_secrets(text: str, where: str) -> None:
    """Refuse ``text`` if it holds a registered secret in any form :func:`redact` knows (raw,
    percent-encoded as in a link, base64 as in an auth header)."""
    if redact(text) != text:
        raise ParameterError("a token or password would appear in the card", where, "remove credentials from the values passed to the card")


def render_dataset_card(
    values: Mapping[str, Any],
    *,
    license: str,
    tags: list[str] | None = None,
    task_categories: list[str] | None = None,
    n_rows: int,
    configs: list[dict[str, Any]],
    pretty_name: str | None = None,
    template: str | os.PathLike[str] | None = None,
) -> Any:
    """The multimodal paired-dataset card (``mmgene/_cards/dataset_card.md``) as a ``huggingface_hub.DatasetCard``;
    ``license`` must be a Hub licence id (:func:`check_license`)."""
    from mmgene.lazy import require

    check_license(license, "license of the dataset card")

    require("huggingface_hub", "a dataset card")
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        license=license,
        language=["en"],
        pretty_name=None if pretty_name is None else _one_line(pretty_name),  # a title is one line, as in the heading
        tags=tags if tags is not None else ["biology", "single-cell", "transcriptomics", "multimodal", "cell-sentences", "anndata", "mmgene"],
        task_categories=task_categories if task_categories is not None else ["feature-extraction", "sentence-similarity", "zero-shot-classification"],
        size_categories=[size_category(n_rows)],
        configs=configs,
    )
    body = render_template(template or template_path("dataset_card.md"), values)
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    _refuse_secrets(str(card), "dataset card")
    return card


def render_model_card(
    values: Mapping[str, Any],
    *,
    license: str = "apache-2.0",
    tags: list[str] | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    pipeline_tag: str = "sentence-similarity",
    template: str | os.PathLike[str] | None = None,
    library_name: str = "sentence-transformers",
) -> Any:
    """The alignment-model card (``mmgene/_cards/model_card.md``) as a ``huggingface_hub.ModelCard``;
    ``recipe`` is optional (a model not made by ``mmgene pretrain`` has no training-corpus section), and
    so is ``members`` (an ensemble's member count; absent: one model). ``library_name`` is what loads the
    folder: sentence-transformers for one model, mmgene for an ensemble (its root is no
    sentence-transformers folder). ``license`` must be a Hub licence id (:func:`check_license`)."""
    from mmgene.lazy import require

    check_license(license, "license of the model card")

    require("huggingface_hub", "a model card")
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        license=license,
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        base_model=base_model,
        datasets=datasets,
        tags=tags if tags is not None else ["sentence-transformers", "biology", "single-cell", "multimodal", "contrastive", "mmgene"],
    )
    body = render_template(template or template_path("model_card.md"), {"recipe": {}, "members": 0, **values})
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    _refuse_secrets(str(card), "model card")
    return card


def code_blocks(card_text: str, language: str = "python") -> list[str]:
    """The fenced code blocks of ``language`` in a rendered card, in order."""
    return [m.group(1) for m in re.finditer(rf"```{language}\n(.*?)```", card_text, flags=re.S)]
