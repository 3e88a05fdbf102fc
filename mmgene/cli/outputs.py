"""Where a command that adds to an AnnData writes it: a new file (``--out``) or the input itself (``--in-place``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

import typer

from mmgene.errors import ParameterError


def in_place_option() -> bool:
    """The ``--in-place`` flag: write the result into FILE itself, replaced atomically."""
    return typer.Option(False, "--in-place", help="Write the result into FILE itself (replaced atomically) instead of --out.")


def _check_replaceable(file: Path) -> None:
    """Refuse ``--in-place`` on a file its owner made read-only: a rename would replace it all the same
    (only the folder's permission counts), and someone who ran ``chmod a-w`` meant it to stay."""
    import os
    import stat

    from mmgene.errors import OutputError

    if file.exists() and (not os.access(file, os.W_OK) or not file.stat().st_mode & stat.S_IWUSR):
        raise OutputError(
            "the file is read-only, so --in-place does not replace it", str(file),
            "pass --out NEW.h5ad to write a new file, or make this one writable (chmod u+w) if it may change",
        )


def _check_anndata_file(file: Path) -> None:
    """Refuse ``--in-place`` on a Cell Ranger or .loom input: the result is an AnnData, written as
    .h5ad (or .zarr), so the file would be replaced by another format that its tools (and, for
    .loom, mmgene itself) can no longer read."""
    from mmgene.errors import OutputError
    from mmgene.io.read import is_foreign

    if is_foreign(file):
        raise OutputError(
            "the file is a Cell Ranger or .loom file, and the result is an AnnData (.h5ad), so --in-place "
            "would replace it with another format", str(file), "pass --out NEW.h5ad to write the result beside it",
        )


def check_suffix(out: Path, suffixes: tuple[str, ...], fix: str) -> None:
    """Refuse an ``--out`` whose name says another kind of file than the one written (with --overwrite,
    an AnnData would replace a CSV of the same name, or a mapping CSV an .h5ad)."""
    if out.suffix.lower() not in suffixes:
        raise ParameterError(f"--out must end in {' or '.join(suffixes)}, got {out.name!r}", "option --out", fix)


#: what an AnnData output may be called: :func:`write_anndata` writes ``.zarr`` as a store, anything else as .h5ad
ANNDATA_SUFFIXES = (".h5ad", ".zarr")


def anndata_target(
    file: Path, out: Optional[Path], *, in_place: bool, overwrite: bool, inputs: Iterable[Path] = ()
) -> Path:
    """The checked output path: ``out`` (new, or replaced with ``overwrite``) or ``file`` with ``in_place``.
    ``out`` may not be, contain or sit inside ``file`` nor any of the command's other ``inputs`` (an index
    folder, a reference AnnData, a model folder)."""
    from mmgene.atomic import check_output

    if in_place and out is not None:
        raise ParameterError("--in-place and --out were both given", "options --in-place/--out", "pass one of them")
    if in_place:
        _check_replaceable(file)
        _check_anndata_file(file)
        return file
    if out is None:
        raise ParameterError(
            "no output given", "option --out", f"pass --out NEW.h5ad, or --in-place to write the result into {file}"
        )
    check_suffix(out, ANNDATA_SUFFIXES, "pass --out NEW.h5ad or NEW.zarr")
    check_output(out, overwrite=overwrite, inputs=[file, *inputs])
    return out


def write_anndata(adata: Any, target: Path, *, file: Path, overwrite: bool) -> None:
    """Write ``.h5ad`` or ``.zarr`` atomically; ``target == file`` means the user asked for ``--in-place``."""
    import shutil

    from mmgene.atomic import atomic_path

    in_place = Path(target).resolve() == Path(file).resolve()
    if in_place:  # through a symbolic link: the file it points to gets the result, and the link stays a link
        target = Path(file).resolve()
    with atomic_path(target, overwrite=overwrite, inputs=() if in_place else [file], in_place=in_place) as tmp:
        if Path(target).suffix.lower() == ".zarr":  # as mmgene.io.read tells a store by its name
            adata.write_zarr(tmp)
        else:
            adata.write_h5ad(tmp)
        if in_place and Path(target).is_file():  # the file keeps its permissions (a 0600 file stays private)
            shutil.copymode(target, tmp)
