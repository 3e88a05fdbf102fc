"""Running as one of several processes (``torchrun`` / ``accelerate launch``): who this process is,
which rows are its share, and the shares put back together in the original order.

A launcher sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; mmgene reads them (or the initialised
process group) and starts the process group when it first needs it (:func:`init`): gloo on CPU,
``cpu:gloo,cuda:nccl`` on a GPU machine, so CPU tensors and CUDA tensors both have a backend. Outside
a launcher everything here is a no-op: rank 0 of 1, and :func:`map_rows` just runs its function.

Rows are dealt in fixed chunks: chunk ``k`` (rows ``k * chunk_size`` to ``(k + 1) * chunk_size``) goes
to rank ``k % world_size``, and each chunk is computed by one call. The chunks do not depend on the
number of processes, so the result is the same bits whatever the world size (a model's batch
composition can change the last bits of a vector, so only the same chunks give the same bits).

Only rank 0 writes: :func:`map_rows` hands the whole result to rank 0 (``None`` elsewhere, unless
asked for on every rank), and :func:`write_rows` has every rank write its own chunks into a folder
that rank 0 stages and renames (:mod:`mmgene.atomic`), for results that do not fit in memory. The
other ranks are quiet (no progress bars, no informational lines). Call these functions on every rank:
a rank that skips one leaves the others waiting.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmgene.errors import InputFileError, ParameterError, cause, is_whole_number

#: rows per chunk when a caller gives none
CHUNK_SIZE = 4096
#: the manifest of a folder written by :func:`write_rows`
SHARDS_FILE = "shards.json"
SHARDS_FORMAT = "mmgene-row-shards/1"

_state = threading.local()


def _dist() -> Any:
    """``torch.distributed`` when it is available and initialised, else None (torch is not imported for it)."""
    import sys

    if "torch" not in sys.modules and not launched():
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise ParameterError(
            f"the environment variable {name}={value!r} is not a whole number", f"${name}", "run under torchrun, or unset it"
        ) from None


def launched() -> bool:
    """Whether a launcher started several processes (``WORLD_SIZE`` > 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def world_size() -> int:
    """Processes in the job: the process group's size, else ``$WORLD_SIZE``, else 1."""
    dist = _dist()
    return dist.get_world_size() if dist is not None else _env_int("WORLD_SIZE", 1)


def rank() -> int:
    """This process's rank: the process group's, else ``$RANK``, else 0."""
    dist = _dist()
    return dist.get_rank() if dist is not None else _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its machine (``$LOCAL_RANK``): which GPU it uses."""
    return _env_int("LOCAL_RANK", rank())


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes outputs and logs."""
    return rank() == 0


def backend() -> str:
    """The backend mmgene starts: gloo on CPU, and NCCL for CUDA tensors where a GPU is present."""
    import torch

    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init() -> bool:
    """Start the process group from the launcher's environment if it is not running yet; returns
    whether this process is one of several. Ranks other than 0 become quiet."""
    if not launched():
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name):
                raise ParameterError(
                    f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but ${name} is not set",
                    "the environment",
                    "start the job with torchrun or accelerate launch, which set RANK, MASTER_ADDR and MASTER_PORT",
                )
        import torch

        if torch.cuda.is_available():  # NCCL talks through the current device: this process's own GPU
            torch.cuda.set_device(local_rank() % torch.cuda.device_count())
        dist.init_process_group(backend=backend(), init_method="env://")
        atexit.register(_shutdown)
    if dist.get_rank() != 0:
        from mmgene.settings import settings

        settings.quiet = True
    return dist.get_world_size() > 1


def _shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(device: str | Any = "auto") -> Any:
    """A torch device: ``'auto'`` -> CUDA when available, else CPU; any other torch device string is
    checked. Under a launcher, ``'auto'`` and ``'cuda'`` mean this process's own GPU (``cuda:LOCAL_RANK``)."""
    import torch

    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"device={device!r} is not a torch device", "argument device", "use 'auto', 'cpu', 'cuda' or 'cuda:0'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device='cuda' was asked for but torch sees no CUDA GPU", "argument device", "use device='auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is None and launched():
        dev = torch.device("cuda", local_rank() % torch.cuda.device_count())
    return dev


def chunks(n: int, chunk_size: int | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` of every chunk of ``n`` rows, in row order (``chunk_size`` None: :data:`CHUNK_SIZE`)."""
    chunk_size = CHUNK_SIZE if chunk_size is None else chunk_size
    if not is_whole_number(chunk_size, 1):
        raise ParameterError(f"chunk_size={chunk_size!r} is not a positive integer", "argument chunk_size", f"use e.g. {CHUNK_SIZE}")
    return [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


def shard(items: list[Any] | range, of_rank: int | None = None, size: int | None = None) -> list[Any]:
    """This rank's share of ``items`` when dealt one by one, as chunks are: ``items[rank::world_size]``."""
    r, w = (rank() if of_rank is None else of_rank), (world_size() if size is None else size)
    return list(items)[r::w]


def my_share(items: list[Any]) -> list[Any]:
    """The items this process works on: its :func:`shard` when the work is split across ranks now,
    all of them alone or inside :func:`local`. Pair it with :func:`gather_objects`."""
    return shard(items) if _active() else list(items)


@contextlib.contextmanager
def local() -> Iterator[None]:
    """Inside, :func:`map_rows` and :func:`write_rows` run in this process only (a chunk's function may call them)."""
    depth = getattr(_state, "local", 0)
    _state.local = depth + 1
    try:
        yield
    finally:
        _state.local = depth


def _active() -> bool:
    """Whether calls here split the work across ranks now: several processes, and not inside a chunk."""
    return not getattr(_state, "local", 0) and init()


def _run(fn: Callable[[int, int], Any], start: int, stop: int) -> np.ndarray:
    with local():
        out = np.asarray(fn(start, stop))
    if out.ndim < 1 or out.shape[0] != stop - start:
        raise RuntimeError(f"a chunk function returned shape {out.shape} for rows {start}:{stop}")  # contract broken
    return out


_DTYPES = ("float32", "float64", "float16", "int64", "int32", "bool")


def map_rows(
    n: int, fn: Callable[[int, int], Any], *, chunk_size: int | None = None, to: str = "main"
) -> np.ndarray | None:
    """``fn(start, stop)`` (an array with ``stop - start`` rows) over ``n`` rows, stacked in row order.

    Under a launcher each rank computes its own chunks and the result goes to rank 0 (``to='main'``;
    the other ranks get None) or to every rank (``to='all'``). Alone, the chunks are computed here.
    The rows are the same bits either way.
    """
    if to not in ("main", "all"):
        raise ParameterError(f"to={to!r} is unknown", "argument to", "use 'main' or 'all'")
    parts = chunks(n, chunk_size)
    if not parts:  # nothing to share out
        with local():
            empty = np.asarray(fn(0, 0))
        return empty if (to == "all" or not _active() or is_main()) else None
    if not _active():
        with local():
            blocks = [_run(fn, a, b) for a, b in parts]
        return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    mine = shard(parts)
    blocks = [_run(fn, a, b) for a, b in mine]
    return _gather(parts, blocks, to)


def _gather(parts: list[tuple[int, int]], blocks: list[np.ndarray], to: str) -> np.ndarray | None:
    """Every rank's chunks (``blocks``: this rank's, in order) as one array in row order, on rank 0 or all."""
    import torch
    import torch.distributed as dist

    w, r = dist.get_world_size(), dist.get_rank()
    device = _comm_device()
    mine = np.concatenate(blocks) if blocks else None
    if mine is not None and (mine.ndim > 2 or str(mine.dtype) not in _DTYPES):
        raise ParameterError(
            f"rows of shape {mine.shape[1:]} and dtype {mine.dtype} cannot be gathered", "map_rows", f"return 1-D or 2-D arrays of {_DTYPES}"
        )
    # every rank's (rows, ndim, width, dtype); a rank without chunks sends zeros and -1s
    meta = [len(mine), mine.ndim, mine.shape[1] if mine.ndim == 2 else 1, _DTYPES.index(str(mine.dtype))] if mine is not None else [0, -1, -1, -1]
    metas = [torch.zeros(4, dtype=torch.int64, device=device) for _ in range(w)]
    dist.all_gather(metas, torch.tensor(meta, dtype=torch.int64, device=device))
    info = [m.tolist() for m in metas]
    kinds = {tuple(m[1:]) for m in info if m[1] >= 0}
    if len(kinds) != 1:
        raise RuntimeError(f"ranks computed rows of different shapes or dtypes: {sorted(kinds)}")  # contract broken
    ndim, width, code = kinds.pop()
    dtype = np.dtype(_DTYPES[code])
    padded = np.zeros((max(m[0] for m in info), width), dtype=dtype)
    if mine is not None:
        padded[: len(mine)] = mine.reshape(len(mine), width)
    tensor = torch.from_numpy(padded).to(device)
    received: list[Any] | None = [torch.empty_like(tensor) for _ in range(w)] if (to == "all" or r == 0) else None
    if to == "all":
        dist.all_gather(received, tensor)
    else:
        dist.gather(tensor, received, dst=0)
    if received is None:
        return None
    n = parts[-1][1]
    out = np.empty((n, width), dtype=dtype)
    for src in range(w):
        rows, pos = received[src].cpu().numpy(), 0
        for a, b in shard(parts, src, w):
            out[a:b] = rows[pos : pos + b - a]
            pos += b - a
    return out if ndim == 2 else out.reshape(n)


def _comm_device() -> Any:
    """Where tensors for collectives live: CPU, unless the group has only NCCL."""
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every rank (a no-op alone)."""
    if _active():
        import torch.distributed as dist

        dist.barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` (a small JSON-able object such as a path) on every rank."""
    if not _active():
        return value
    import torch.distributed as dist

    box = [json.dumps(value) if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return json.loads(box[0])


def write_rows(
    n: int,
    fn: Callable[[int, int], Any],
    folder: str | os.PathLike[str],
    *,
    chunk_size: int | None = None,
    overwrite: bool = False,
    inputs: tuple[Any, ...] = (),
) -> Path:
    """Write ``fn(start, stop)`` over ``n`` rows as ``.npy`` shards, for results that do not fit in memory.

    ``folder`` gets ``part-00000.npy`` ... (one per chunk, row order) and ``shards.json`` (rows, width,
    dtype, and each part's rows). Every rank writes its own chunks (so the folder must be one every rank
    reaches: one machine, or a shared file system); rank 0 stages the folder beside the target and
    renames it when all are written (:func:`mmgene.atomic.atomic_path`). Read it back with
    :func:`read_rows` or :func:`iter_rows`. Returns the folder.
    """
    from mmgene.atomic import atomic_path, check_output

    target = check_output(folder, overwrite=overwrite, inputs=inputs)  # on every rank: all refuse alike
    parts = chunks(n, chunk_size)
    if not _active():
        with atomic_path(target, overwrite=overwrite, inputs=inputs) as tmp:
            tmp.mkdir()
            described = [_write_part(tmp, k, _run(fn, a, b)) for k, (a, b) in enumerate(parts)]
            _write_manifest(tmp, n, parts, described)
        return target
    manager = atomic_path(target, overwrite=overwrite, inputs=inputs) if is_main() else contextlib.nullcontext(None)
    with manager as tmp:
        if tmp is not None:
            tmp.mkdir()
        staged = Path(broadcast(str(tmp) if tmp is not None else None))
        mine = [(k, a, b) for k, (a, b) in shard(list(enumerate(parts)))]
        described = [(k, _write_part(staged, k, _run(fn, a, b))) for k, a, b in mine]
        everyone = gather_objects(described)
        if tmp is not None:
            by_chunk = dict(pair for rank_parts in everyone for pair in rank_parts)
            _write_manifest(tmp, n, parts, [by_chunk[k] for k in range(len(parts))])
        barrier()
    barrier()  # rank 0 has renamed the folder
    return target


def gather_objects(value: Any) -> list[Any]:
    """Every rank's JSON-able ``value``, in rank order, on every rank (``[value]`` alone)."""
    if not _active():
        return [value]
    import torch.distributed as dist

    box: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(box, json.dumps(value))
    return [json.loads(v) for v in box]


def _write_part(folder: Path, k: int, rows: np.ndarray) -> dict[str, Any]:
    name = f"part-{k:05d}.npy"
    np.save(folder / name, np.ascontiguousarray(rows), allow_pickle=False)
    return {"file": name, "rows": int(rows.shape[0]), "shape": list(rows.shape[1:]), "dtype": str(rows.dtype)}


def _write_manifest(folder: Path, n: int, parts: list[tuple[int, int]], described: list[dict[str, Any]]) -> None:
    shapes = {(tuple(d["shape"]), d["dtype"]) for d in described}
    if len(shapes) > 1:
        raise RuntimeError(f"chunks of different widths or dtypes: {sorted(shapes)}")  # contract broken
    shape, dtype = shapes.pop() if shapes else ((), "float32")
    manifest = {
        "format": SHARDS_FORMAT,
        "rows": int(n),
        "shape": list(shape),
        "dtype": dtype,
        "parts": [{"file": d["file"], "start": a, "stop": b} for d, (a, b) in zip(described, parts)],
    }
    (folder / SHARDS_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / SHARDS_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputFileError(f"no readable {SHARDS_FILE} ({exc})", str(folder), "give a folder written by mmgene.distributed.write_rows") from exc
    parts = manifest.get("parts") if isinstance(manifest, dict) else None
    ok = manifest.get("format") == SHARDS_FORMAT if isinstance(manifest, dict) else False
    expected = 0
    for part in parts if isinstance(parts, list) else []:
        name = part.get("file") if isinstance(part, dict) else None
        if not isinstance(name, str) or Path(name).name != name or part.get("start") != expected:
            ok = False
            break
        expected = part.get("stop")
    if not ok or not isinstance(parts, list) or expected != manifest.get("rows") or not _layout_ok(manifest):
        raise InputFileError(
            f"{SHARDS_FILE} does not describe consecutive parts of {SHARDS_FORMAT}", str(path), "write the folder again with write_rows"
        )
    return manifest


def _layout_ok(manifest: dict[str, Any]) -> bool:
    """Whether the manifest's row shape is a list of whole numbers and its dtype one numpy saves without pickling."""
    shape, dtype = manifest.get("shape"), manifest.get("dtype")
    if not isinstance(shape, list) or not all(is_whole_number(d) for d in shape) or not isinstance(dtype, str):
        return False
    try:
        return not np.dtype(dtype).hasobject
    except TypeError:
        return False


def _load_part(folder: Path, part: dict[str, Any], manifest: dict[str, Any], mmap: bool) -> np.ndarray:
    """One part's rows; a missing or damaged file, or one of other rows, width or dtype than the manifest
    says, is an :class:`InputFileError`."""
    try:
        rows = np.load(folder / part["file"], mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputFileError(
            f"{part['file']} cannot be read ({cause(exc)})", str(folder), "write the folder again with write_rows"
        ) from exc
    want = (part["stop"] - part["start"], *manifest["shape"])
    if rows.shape != want or rows.dtype != np.dtype(manifest["dtype"]):
        raise InputFileError(
            f"{part['file']} holds {rows.shape} rows of {rows.dtype}, the manifest says {want} of {manifest['dtype']}",
            str(folder),
            "write the folder again with write_rows",
        )
    return rows


def iter_rows(folder: str | os.PathLike[str], *, mmap: bool = True) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, rows)`` of each part of a :func:`write_rows` folder, in row order (memory-mapped)."""
    folder = Path(folder)
    manifest = _manifest(folder)
    for part in manifest["parts"]:
        yield part["start"], part["stop"], _load_part(folder, part, manifest, mmap)


def read_rows(folder: str | os.PathLike[str]) -> np.ndarray:
    """All rows of a :func:`write_rows` folder as one array (for results that fit in memory)."""
    manifest = _manifest(Path(folder))
    out = np.empty((manifest["rows"], *manifest["shape"]), dtype=np.dtype(manifest["dtype"]))
    for start, stop, rows in iter_rows(folder):
        out[start:stop] = rows
    return out


def gather_with_grad(x: Any) -> Any:
    """Every rank's rows of tensor ``x`` (rank order) on every rank, with gradients flowing back to the
    rank each row came from, as CLIP's ``gather_with_grad``: a loss over the result sees the whole
    global batch. Ranks may hold different numbers of rows. Alone (or without a process group): ``x``."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return x
    import torch

    sizes = _row_counts(x)
    longest = max(sizes)
    if longest != x.shape[0]:
        x = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))])
    parts = _gather_rows().apply(x).split(longest)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


@functools.cache
def _gather_rows() -> Any:
    """The autograd function behind :func:`gather_with_grad` (defined on first use: torch stays unimported)."""
    import torch
    import torch.distributed as dist

    class GatherRows(torch.autograd.Function):
        """All-gather forward; backward sums every rank's gradient of the gathered rows (all-reduce)
        and keeps this rank's slice, i.e. a reduce-scatter, which gloo lacks."""

        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, x.contiguous())
            ctx.rows = x.shape[0]
            return torch.cat(parts)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            grad = grad.contiguous().clone()
            dist.all_reduce(grad)
            start = dist.get_rank() * ctx.rows
            return grad[start : start + ctx.rows]

    return GatherRows


def gather_tensor(x: Any) -> Any:
    """Every rank's rows of tensor ``x`` (rank order) on every rank, without gradients. Alone: ``x``."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return x
    import torch

    sizes = _row_counts(x)
    longest = max(sizes)
    padded = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))]) if longest != x.shape[0] else x.contiguous()
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


def _row_counts(x: Any) -> list[int]:
    """Rows of ``x`` on every rank."""
    import torch
    import torch.distributed as dist

    mine = torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device)
    counts = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, mine)
    return [int(c.item()) for c in counts]
