"""Outputs that never destroy a user's files: checked before the work, written to a temporary path and renamed.

The rules, shared by every command and ``save`` method that writes:

- an output that already exists is replaced only when the caller asked (``overwrite=True``,
  ``--overwrite``), and a *folder* only when mmgene wrote it (it carries :data:`MARKER`) and holds
  nothing else: the marker lists what mmgene wrote there, and a file someone added since is never
  deleted with it (markers written before the list existed cannot tell); an empty folder counts as
  new for a folder output, and is never replaced by a file;
- an output may not be, contain or sit inside one of the command's inputs, however either is spelled
  (a relative path, a link, a hard link, another case on a case-insensitive disk);
- a link is never written through: a link to a folder counts as a folder mmgene did not write, a link
  to a file is replaced as a link (with overwrite) and the file it points to is left alone;
- the location is checked for writability before any long work (:func:`check_output`);
- the result is staged in ``.NAME.<random>.tmp`` beside the target and renamed on success, so a kill
  never leaves a half-written output; such leftovers of killed runs are removed by the next run that
  writes the same output (a folder output they had moved aside and not yet replaced is put back first).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mmgene.errors import OutputError

#: file inside every folder mmgene writes; only such folders may be replaced.
MARKER = ".mmgene-output"
#: files a desktop adds to any folder it shows (never a user's work), which do not keep a folder from being replaced
_SYSTEM_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
PathLike = str | os.PathLike[str]


def _resolved(path: PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def is_mmgene_output(path: PathLike) -> bool:
    """True for a folder that carries mmgene's marker file."""
    path = Path(path)
    return path.is_dir() and not path.is_symlink() and (path / MARKER).is_file()


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file or folder on disk (a link, a hard link, a name spelled in
    another case on a case-insensitive disk); False when either does not exist."""
    try:
        return os.path.samestat(os.stat(a), os.stat(b))
    except OSError:
        return False


def _inside(inner: Path, outer: Path) -> bool:
    """``inner`` is ``outer`` or lies inside it, however either is spelled: compared as written, with
    links resolved, and by identity on disk of ``inner`` and each folder above it."""
    if _is_within(inner, outer) or _is_within(Path(os.path.realpath(inner)), Path(os.path.realpath(outer))):
        return True
    return any(_same_file(p, outer) for p in (inner, *inner.parents))


def _check_inputs(target: Path, inputs: Iterable[PathLike]) -> None:
    for item in inputs:
        if item is None or not isinstance(item, (str, os.PathLike)):
            continue
        source = _resolved(item)
        inside, contains = _inside(target, source), _inside(source, target)
        if inside or contains:
            relation = "is" if inside and contains else ("contains" if contains else "is inside")
            raise OutputError(
                f"the output {relation} the input {str(source)!r}",
                str(target),
                "choose an output path outside the input (mmgene never writes over its input)",
            )


def _check_existing(target: Path, overwrite: bool, in_place: bool = False) -> None:
    if in_place or not (target.exists() or target.is_symlink()) or _is_empty_dir(target):
        return
    kind = "folder" if target.is_dir() else "file"  # a link to a folder is a folder mmgene did not write
    if not overwrite:
        raise OutputError(f"the output {kind} already exists", str(target), "choose a new path, or pass --overwrite (overwrite=True) to replace it")
    if kind == "folder" and not is_mmgene_output(target):
        raise OutputError(
            f"the output folder exists and was not written by mmgene (no {MARKER} in it), so it is not replaced",
            str(target),
            "choose a new path, or move that folder away yourself",
        )
    added = _not_written(target) if kind == "folder" else []
    if added:
        from mmgene.errors import _preview

        raise OutputError(
            f"the output folder holds {len(added)} entr{'y' if len(added) == 1 else 'ies'} mmgene did not write "
            f"({_preview(added)}), so it is not replaced",
            str(target),
            "move those out of the folder (or choose a new path), then run again",
        )


def _entries(folder: Path) -> list[str]:
    """Every file, folder and link below ``folder`` (links not followed), as sorted relative POSIX paths,
    the marker left out."""
    out = []
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            out.append(Path(root, name).relative_to(folder).as_posix())
    return sorted(e for e in out if e != MARKER)


def _not_written(folder: Path) -> list[str]:
    """What ``folder`` (an mmgene output) holds that its marker does not list: added since mmgene wrote it.
    [] when the marker lists nothing (written before the list existed, or by :func:`start_output_folder`)."""
    try:
        listed = json.loads((folder / MARKER).read_text(encoding="utf-8")).get("entries")
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(listed, list):
        return []
    known = set(map(str, listed))
    return [e for e in _entries(folder) if e not in known and Path(e).name not in _SYSTEM_FILES]


def _writable_ancestor(target: Path) -> Path:
    """The nearest existing folder above ``target``; an error when it is missing or not writable."""
    parent = target.parent
    while not parent.exists():
        if parent.is_symlink():
            break
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot create the output: {str(parent)!r} is not a folder", str(target), "choose an output inside a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".mmgene-probe.", dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        raise OutputError(f"cannot write to {str(parent)!r} ({exc.strerror or exc})", str(target), "choose a writable location") from exc
    return parent


def _is_staging(folder: Path, name: str) -> bool:
    """Whether ``folder`` holds nothing but what :func:`atomic_path` stages in it (``name``, the output,
    and ``.old``, the one it replaces): a user's own folder of a like name is never taken for one."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    try:
        return all(p.name in (name, ".old") for p in folder.iterdir())
    except OSError:  # a folder this user may not list is not one mmgene staged
        return False


def stale_temporaries(target: PathLike) -> list[Path]:
    """Leftovers of killed runs that wrote ``target``: ``.NAME.*.tmp`` folders beside it holding only
    a staged ``NAME`` (and the ``.old`` output it was replacing)."""
    target = _resolved(target)
    if not target.parent.is_dir():
        return []
    prefix, name_len = f".{target.name}.", len(target.name) + 2
    return sorted(
        p for p in target.parent.iterdir()
        if p.name.startswith(prefix) and p.name.endswith(".tmp") and len(p.name) > name_len + 4
        and _is_staging(p, target.name)
    )


def _remove_stale(target: Path) -> None:
    """Remove the leftovers of killed runs; a folder output that one had moved aside (``.old``) and not
    replaced (the target is missing: killed between the two renames) is first put back."""
    from mmgene.progress import info

    for stale in stale_temporaries(target):
        old = stale / ".old"
        if old.exists() and not (target.exists() or target.is_symlink()):
            os.replace(old, target)
            info(f"put back {target}, moved aside by an earlier run that was stopped before it wrote its output")
        shutil.rmtree(stale, ignore_errors=True)
        info(f"removed {stale}, left by an earlier run that was stopped")


def check_output(
    target: PathLike, *, overwrite: bool = False, inputs: Iterable[PathLike] = (), folder: bool = False
) -> Path:
    """Refuse an output that would destroy something, before any long work; returns the absolute path.

    Checks, in order: the output is not one of ``inputs`` (nor contains nor sits inside one); an
    existing output may be replaced (``overwrite`` and, for a folder, mmgene's marker); for a ``folder``
    output (a model), no file or link has its name (a folder cannot be renamed onto one, so the work
    would be refused only at its end); the nearest existing folder above it is writable. Nothing is
    created or changed.
    """
    resolved = _resolved(target)
    _check_inputs(resolved, inputs)
    _check_existing(resolved, overwrite)
    if folder and (resolved.is_symlink() or resolved.is_file()):
        raise OutputError(
            f"the output is a folder, but {'a link' if resolved.is_symlink() else 'a file'} of that name exists",
            str(resolved), "choose another path, or move it away yourself",
        )
    _writable_ancestor(resolved)
    return resolved


def mark(folder: PathLike, *, listing: bool = True) -> None:
    """Write mmgene's marker into ``folder``, which mmgene has written; with ``listing`` it names every entry
    of the folder, so that a file added later is never deleted when the folder is replaced."""
    from mmgene import __version__

    marker = {"written_by": "mmgene", "version": __version__}
    if listing:
        marker["entries"] = _entries(Path(folder))
    Path(folder, MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")


@contextmanager
def atomic_path(
    target: PathLike, *, overwrite: bool = False, inputs: Iterable[PathLike] = (), in_place: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` only on success.

    Works for files and folders; a staged folder gets mmgene's marker. An existing target is replaced
    only as :func:`check_output` allows (checked before and again at the rename), or when the caller
    explicitly updates an input in place (``in_place``: ``--in-place``). On error the temporary path is
    removed and the old ``target``, if any, is left untouched.
    """
    target = _resolved(target) if in_place else check_output(target, overwrite=overwrite, inputs=inputs)
    if in_place:
        _writable_ancestor(target)
    _remove_stale(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    old = tmp / ".old"
    try:
        yield staged
        if staged.is_dir() and not staged.is_symlink():
            mark(staged)
        _check_existing(target, overwrite, in_place)
        if target.is_symlink() and staged.is_dir():  # a link to a file (allowed by overwrite): never written through
            raise OutputError(
                "the output is a folder, but a link to a file of that name exists", str(target), "choose another path, or remove the link yourself"
            )
        if staged.is_dir() and target.is_file() and not target.is_symlink():  # os.replace cannot put a folder there
            raise OutputError(
                "the output is a folder, but a file of that name exists", str(target), "choose another path, or move the file away yourself"
            )
        if target.is_dir() and not target.is_symlink():
            if not staged.is_dir():  # an (empty) folder of the user's is not replaced by a file
                raise OutputError("the output is a file, but a folder of that name exists", str(target), "choose a file path, e.g. inside that folder")
            os.replace(target, old)
        try:
            os.replace(staged, target)
        except OSError:
            if old.exists():  # put the old output back before the staging folder is removed
                os.replace(old, target)
            raise
    except OSError as exc:  # a full disk, a folder made read-only meanwhile: the old output is left as it was
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)  # h5py gives no errno
        if not full and exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG):
            raise  # not the disk's answer to a write (an upload's error, say): as it was
        raise OutputError(
            f"writing the output failed ({os.strerror(errno.ENOSPC) if full else exc.strerror}); nothing was replaced", str(target),
            "free some space or choose a writable location, then run the command again",
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def start_output_folder(target: PathLike, *, overwrite: bool = False, inputs: Iterable[PathLike] = ()) -> Path:
    """A folder that a long job fills in place (the demo): checked, emptied when replaced, marked first.

    Use :func:`atomic_path` where the whole folder can be staged; this is for jobs whose parts name
    each other by path (an index that names its model). Returns the absolute path.
    """
    target = check_output(target, overwrite=overwrite, inputs=inputs)
    if target.is_symlink():  # a link to a file, replaced as allowed: the file it points to is untouched
        target.unlink()
    if is_mmgene_output(target):
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    mark(target, listing=False)  # filled after marking: what it will hold is not known yet
    return target
