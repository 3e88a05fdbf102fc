"""The root ``mmgene`` command, global options and error handling.

Command modules import only typer at the top and the heavy stack inside each command, so
``mmgene --help`` answers quickly.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from mmgene.errors import MMGeneError
from mmgene.settings import settings

app = typer.Typer(
    name="mmgene",
    help="Single-cell transcriptomes and text in one embedding space.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

def overwrite_option() -> bool:
    """The ``--overwrite`` flag every command that writes an output shares."""
    return typer.Option(False, "--overwrite", help="Replace an existing output: a file whatever wrote it, a folder only if mmgene wrote it.")


#: modules under mmgene.cli that register commands on ``app`` when imported.
COMMAND_MODULES = ("info", "embed", "embed_geneformer", "genes", "embed_genept", "embed_model", "index", "publish", "align", "cells", "demo", "corpus", "labels", "pretrain")


def _version(value: bool) -> None:
    if value:
        from mmgene import __version__

        typer.echo(f"mmgene {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress bars or informational messages on stderr (also MMGENE_QUIET=1); stdout holds only the result."
    ),
) -> None:
    """Single-cell transcriptomes and text in one embedding space."""
    if quiet:
        settings.quiet = True
    from mmgene.progress import progress_enabled

    if not progress_enabled():
        # libraries draw their own bars (Hugging Face model loading and uploads, sentence-transformers'
        # training set-up, any tqdm bar); silence them too
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")


for _name in COMMAND_MODULES:
    importlib.import_module(f"mmgene.cli.{_name}")


def _usage_line(exc: typer.TyperException) -> str:
    """A command-line usage error (bad choice, unknown option, missing argument) as one line."""
    message = " ".join(exc.format_message().replace("Value error, ", "").split())
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "mmgene"
    return f"{message.rstrip('.')}. Where: {command}. What to do: see '{command} --help'."


def _fail(message: object, error: BaseException) -> None:
    """Print ``mmgene: error: MESSAGE`` on stderr and, when ``--json`` was asked for, the error as the
    one JSON object on stdout (a script parsing stdout gets JSON on failure too)."""
    print(f"mmgene: error: {message}", file=sys.stderr)
    args = sys.argv[1:]
    if "--json" in (args[: args.index("--")] if "--" in args else args):
        import json

        print(json.dumps({"error": str(message), "type": type(error).__name__}))


def main() -> None:
    """Console entry point: an :class:`MMGeneError` or a usage error becomes one line on stderr (and,
    with ``--json``, ``{"error": ..., "type": ...}`` on stdout) and exit status 2; nothing but the
    command's result reaches stdout."""
    try:
        code = app(standalone_mode=False)
    except MMGeneError as exc:
        _fail(exc, exc)
        sys.exit(2)
    except ImportError as exc:  # an optional package missing below the require() that guards a feature
        from mmgene.lazy import missing_dependency

        error = missing_dependency(exc, "this command")
        if error is None:
            raise
        _fail(error, error)
        sys.exit(2)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `mmgene` or `mmgene index`: the help, as click shows it
            exc.show()  # type: ignore[attr-defined]
        else:
            _fail(_usage_line(exc), exc)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("mmgene: aborted", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
