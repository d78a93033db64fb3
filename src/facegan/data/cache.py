"""``prepare``: photos -> a uint8 (N, S, S, 3) training cache, chunked, parallel and resumable.

:func:`prepare` decodes every photo once (with :func:`facegan.data.transform.prepare_image`), in
worker processes, in chunks:

* each chunk is written to ``<out>.partial/`` (atomically) and is the unit of progress and resume;
  the work folder is keyed by a hash of the file list and the options, so a re-run after Ctrl-C,
  ``kill`` or a full disk reuses the finished chunks — each only after checking, by hashing them
  again, that the bytes of its input files and of its own output are those it recorded (sizes
  and mtimes are not trusted: a file rewritten in place keeps both); a changed file costs its
  chunk, not the run;
* a ``.tar(.gz)`` source is first read once, in archive order, into an uncompressed copy in
  the work folder (:mod:`facegan.data.spool`) that the chunks then read by sorted name: a
  compressed tar can only be read forward, and by sorted name an unsorted one would be
  decompressed again from its start for every step back (quadratic). The copy is deleted when
  the run stops (a SIGKILL leaves it for the next run to overwrite);
* the final array is written beside ``out`` (:func:`facegan.fileio.atomic_write`) and renamed onto
  it only when complete, so ``out`` is always either absent, the previous result or the new one;
  the JSON sidecar (:func:`sidecar_path`) follows it. A failed write (disk full) is one message
  naming the file; the finished chunks stay for the next run.

Per-file decisions taken here (the conversions themselves are :mod:`facegan.data.transform`'s):

* images smaller than the target are upsampled and listed as ``upsampled`` in the sidecar;
  ``--small skip`` skips them instead;
* empty, truncated, corrupt and non-image files are skipped and listed with the reason;
  ``--strict`` fails on the first one instead.

All counts and lists are in the sidecar. Order: the source's sorted names, skipped ones removed.
The workers are module-level functions of this module (the process pool forks on Linux, spawns
elsewhere); :func:`prepare_image` is looked up here, so that is where tests patch it.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np

from facegan.data.celeba import resolve_source
from facegan.data.spool import TarSpool, spool_tar
from facegan.data.transform import prepare_image
from facegan.devices import usable_cpus
from facegan.errors import BadImageError, FaceganError, WriteError
from facegan.fileio import atomic_write, atomic_write_text, check_output_file, clean_stale_temps, file_digest
from facegan.images import ImageSource

#: Bumped when the cache's content for the same input would change (part of the resume key).
CACHE_FORMAT = "facegan-cache/1"
#: The uncompressed one-pass copy of a tar source in the work folder (see :mod:`facegan.data.spool`).
SPOOL_NAME = "archive-copy.bin"
#: Format of the work folder's chunk records (part of the resume key: older chunks are redone).
_CHUNK_FORMAT = 2


@dataclass
class PrepareConfig:
    """Options of ``facegan prepare`` (each becomes a ``--option``)."""

    size: int = 64
    """Side of the output images: torchvision Resize(size) then CenterCrop(size)."""
    split: Literal["all", "train", "valid", "test"] = "all"
    """CelebA split from list_eval_partition.txt (needs the CelebA layout for anything but all)."""
    workers: int = 0
    """Worker processes decoding images (0: one per CPU this process may use)."""
    chunk: int = 512
    """Images per work unit: the unit of progress, of parallel work and of resume."""
    small: Literal["upsample", "skip"] = "upsample"
    """Images with a side under --size: upsample them (the brief's Resize does) or skip them."""
    strict: bool = False
    """Fail on the first unusable file (bad image, or non-image file in SRC) instead of skipping
    and listing it."""
    resume: bool = True
    """Reuse the finished chunks of an interrupted run on the same file list and options; each
    is reused only if its input files and its own output still hash as recorded."""

    def __post_init__(self) -> None:
        if self.size < 1:
            raise FaceganError(f"--size must be at least 1 (got {self.size})")
        if self.workers < 0:
            raise FaceganError(f"--workers must be 0 (all cores) or more (got {self.workers})")
        if self.chunk < 1:
            raise FaceganError(f"--chunk must be at least 1 (got {self.chunk})")


@dataclass
class PrepareReport:
    """What :func:`prepare` wrote: the cache, its sidecar and the counts."""

    out: Path
    sidecar: Path
    count: int
    listed: int
    skipped: list[tuple[str, str]]
    upsampled: list[str]
    converted: dict[str, int]
    resumed_chunks: int
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The resume key (which files, in which order, which options) and each chunk's content hashes


def list_hash(names: list[str]) -> str:
    """sha256 of the ordered file list (identifies which images, in which order)."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _inputs_hash(names: list[str], digests: dict[str, str]) -> str:
    """sha256 over ``name NUL sha256(bytes) LF`` of a chunk's files ("-": could not be read)."""
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode("utf-8", "surrogateescape") + b"\0" + digests.get(name, "-").encode() + b"\n")
    return h.hexdigest()


def _read_digests(source: ImageSource | TarSpool, names: list[str]) -> dict[str, str]:
    """``{name: sha256 of its bytes}`` for ``names`` (missing: unreadable). Only the files asked
    for are read (a tar source is read through its :class:`TarSpool`, random access too)."""
    out = {}
    try:
        for name in names:
            try:
                out[name] = hashlib.sha256(source.read_bytes(name)).hexdigest()
            except BadImageError:
                pass
    finally:
        source.close()
    return out


# ---------------------------------------------------------------------------------------------
# Workers: one chunk of images -> chunk-XXXXXX.npy + .json in the work folder

_WORKER: dict[str, Any] = {}


def _init_worker(source: ImageSource | TarSpool, work: str, size: int, small: str, strict: bool) -> None:
    _WORKER.update(source=source, work=Path(work), size=size, small=small, strict=strict)


def _init_pool_worker(*args) -> None:
    # Ctrl-C goes to the whole process group: the parent alone handles it and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        # If the parent is killed (kill -9), die with it instead of finishing a chunk nobody
        # collects (PR_SET_PDEATHSIG); half-written files are swept by the next run.
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    _init_worker(*args)


def _chunk_paths(work: Path, index: int) -> tuple[Path, Path]:
    return work / f"chunk-{index:06d}.npy", work / f"chunk-{index:06d}.json"


def _process_chunk(job: tuple[int, int, int]) -> dict[str, Any]:
    """Prepare images ``start:stop`` of the source; write the chunk; return its summary."""
    index, start, stop = job
    w = _WORKER
    source: ImageSource | TarSpool = w["source"]
    size, small, strict = w["size"], w["small"], w["strict"]
    arrays, skipped, upsampled, converted, rotated, digests = [], [], [], {}, 0, {}
    for name in source.names[start:stop]:
        try:
            raw = source.read_bytes(name)
            digests[name] = hashlib.sha256(raw).hexdigest()  # what a resume checks this chunk by
            arr, notes = prepare_image(raw, name, size)
            if min(notes["original"]) < size:
                if small == "skip":
                    width, height = notes["original"]
                    raise BadImageError(name, f"smaller than {size}x{size} ({width}x{height})")
                upsampled.append(name)
        except BadImageError as exc:
            if strict:
                return {"index": index, "error": [name, exc.reason]}
            skipped.append([name, exc.reason])
            continue
        if notes["converted"]:
            converted[notes["converted"]] = converted.get(notes["converted"], 0) + 1
        rotated += notes["rotated"]
        arrays.append(arr)
    stack = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
    buf = io.BytesIO()
    np.save(buf, stack, allow_pickle=False)
    data = buf.getvalue()
    meta = {"index": index, "start": start, "stop": stop, "good": len(arrays),
            "skipped": skipped, "upsampled": upsampled, "converted": converted,
            "rotated": rotated, "inputs_sha256": _inputs_hash(source.names[start:stop], digests),
            "output_sha256": hashlib.sha256(data).hexdigest()}
    npy, js = _chunk_paths(w["work"], index)
    atomic_write(npy, lambda f: f.write(data))
    # The .json is written last: its presence marks the chunk as finished.
    atomic_write(js, lambda f: f.write(json.dumps(meta).encode()))
    return meta


def _finished_chunk(work: Path, index: int, start: int, stop: int, size: int,
                    strict: bool) -> dict[str, Any] | None:
    """The record of an already finished chunk whose output still hashes as recorded, or None
    when it must be (re)done. Its inputs are checked by the caller (:func:`_check_inputs`)."""
    npy, js = _chunk_paths(work, index)
    try:
        meta = json.loads(js.read_text())
        if (meta.get("start"), meta.get("stop")) != (start, stop) or file_digest(npy) != meta["output_sha256"]:
            return None
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if arr.shape != (meta["good"], size, size, 3):
        return None
    if strict and meta["skipped"]:
        return None  # a non-strict run skipped something: redo it so strict mode can fail on it
    return meta


def _check_inputs(source: ImageSource | TarSpool, jobs: list[tuple[int, int, int]],
                  metas: dict[int, dict[str, Any]]) -> list[int]:
    """Drop from ``metas`` the chunks whose input files no longer hash as recorded; their indices."""
    if not metas:
        return []
    reused = [(i, start, stop) for i, start, stop in jobs if i in metas]
    digests = _read_digests(source, [n for _, start, stop in reused for n in source.names[start:stop]])
    changed = [i for i, start, stop in reused
               if _inputs_hash(source.names[start:stop], digests) != metas[i].get("inputs_sha256")]
    for i in changed:
        del metas[i]
    return changed


def _write_cache(f, work: Path, ordered: list[dict[str, Any]], shape: tuple[int, ...]) -> None:
    """The final ``.npy``, written sequentially from the chunks (no memory map: a full disk is
    an ordinary OSError, never a SIGBUS)."""
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                             "fortran_order": False, "shape": shape})
    for m in ordered:
        part = np.load(_chunk_paths(work, m["index"])[0], allow_pickle=False)
        f.write(np.ascontiguousarray(part).tobytes())


# ---------------------------------------------------------------------------------------------
# prepare


def sidecar_path(out: str | os.PathLike) -> Path:
    """The JSON sidecar of cache ``out``: ``celeba64.npy`` -> ``celeba64.json``."""
    return Path(out).with_suffix(".json")


def work_dir(out: str | os.PathLike) -> Path:
    """The folder holding an unfinished run's chunks: ``celeba64.npy`` -> ``celeba64.npy.partial``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _n_workers(requested: int, n_jobs: int) -> int:
    """``requested`` workers (0: one per CPU this process may use), never more than the jobs."""
    return max(1, min(requested or usable_cpus(), n_jobs))


def _pool_context():
    # fork starts workers instantly with torchvision already imported; elsewhere spawn is safe.
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


@contextmanager
def _kept_on_failure(work: Path, metas: dict[int, dict[str, Any]], n_jobs: int, log) -> Iterator[None]:
    """On Ctrl-C or a failed write (disk full): say that the finished chunks are kept, and how
    to go on. ``metas`` holds the finished chunks at that moment."""
    hint = f"run the same command again to resume from {work}/"
    try:
        yield
    except KeyboardInterrupt:
        log(f"prepare: interrupted; {len(metas)} of {n_jobs} chunks are finished and kept: {hint}")
        raise
    except WriteError as exc:
        raise WriteError(f"{exc}; {len(metas)} of {n_jobs} chunks are finished and kept: {hint}") from exc


@contextmanager
def _random_access(source: ImageSource, work: Path, progress: bool, log) -> Iterator[ImageSource | TarSpool]:
    """What the chunks read their images from: ``source`` itself, or for a tar archive (forward
    only: reading it by sorted name would be quadratic) its one-pass copy in ``work``, deleted
    on the way out whatever happens (it is as large as the images)."""
    if source.kind != "tar":
        yield source
        return
    log(f"prepare: reading {source.path} once, in its own order, into {work / SPOOL_NAME} "
        "(the cache keeps the sorted order; the copy is deleted at the end)")
    spool = spool_tar(source, work / SPOOL_NAME, progress)
    try:
        yield spool
    finally:
        spool.remove()


def prepare(
    src: str | os.PathLike,
    out: str | os.PathLike,
    cfg: PrepareConfig | None = None,
    *,
    progress: bool = True,
    log=print,
) -> PrepareReport:
    """Turn the images of ``src`` into the uint8 cache ``out`` (N, size, size, 3) + sidecar.

    ``src``: CelebA layout, a folder (recursive) or a .zip/.tar(.gz) of images. Raises
    :class:`FaceganError` for unusable input (and, with ``cfg.strict``, for the first bad image).
    ``KeyboardInterrupt`` leaves the finished chunks in :func:`work_dir` for the next run.
    """
    import torchvision.transforms.functional  # noqa: F401  (imported once, before forking)

    cfg = cfg or PrepareConfig()
    out, work = _check_outputs(out)
    t0 = time.perf_counter()
    source, info = _listed_source(src, cfg)
    names = source.names
    key, versions = _resume_key(source, cfg)
    _open_work(work, key, src, cfg.resume, log)

    jobs = [(i, s, min(s + cfg.chunk, len(names))) for i, s in enumerate(range(0, len(names), cfg.chunk))]
    metas: dict[int, dict[str, Any]] = {}
    with _kept_on_failure(work, metas, len(jobs), log), _random_access(source, work, progress, log) as reader:
        metas.update(_reusable_chunks(reader, work, jobs, cfg, log))
        resumed = len(metas)
        if info.get("missing_count"):
            log(f"prepare: {info['missing_count']} files of split '{cfg.split}' in the partition file "
                f"are not among the images (first: {info['missing_first'][0]})")
        if resumed:
            log(f"prepare: resuming: {resumed} of {len(jobs)} chunks already done in {work}")
        _run_chunks(reader, source, work, jobs, metas, cfg, progress)

        ordered = [metas[i] for i, _, _ in jobs]
        totals = _totals(source, ordered)
        if totals.count == 0:
            shown = "; ".join(f"{n}: {r}" for n, r in totals.skipped[:5])
            raise FaceganError(f"{src}: none of the {len(names)} images could be used ({shown})")
        seconds = time.perf_counter() - t0
        meta = _sidecar(info, names, cfg, totals, versions, seconds)
        side = sidecar_path(out)
        shape = (totals.count, cfg.size, cfg.size, 3)
        # Written beside `out` and renamed onto it when complete (and on disk: fsync).
        atomic_write(out, lambda f: _write_cache(f, work, ordered, shape), fsync=True)
        atomic_write_text(side, json.dumps(meta, indent=1) + "\n")
        shutil.rmtree(work, ignore_errors=True)
        return PrepareReport(out, side, totals.count, len(names), totals.skipped, totals.upsampled,
                             totals.converted, resumed, seconds, meta)


def _check_outputs(out: str | os.PathLike) -> tuple[Path, Path]:
    """The cache path and its work folder, refused before any work if they cannot be written;
    the half-written files a killed run (SIGKILL) left beside them removed."""
    out = check_output_file(out, suffix=".npy", what="cache (e.g. data/celeba64.npy)")
    check_output_file(sidecar_path(out), what="sidecar")
    work = work_dir(out)
    if work.exists() and not work.is_dir():
        raise FaceganError(f"{work}: is in the way (prepare keeps its unfinished chunks in this folder)")
    clean_stale_temps(out.parent, out.name)  # a killed run's half-written cache (SIGKILL)
    clean_stale_temps(out.parent, sidecar_path(out).name)
    return out, work


def _listed_source(src: str | os.PathLike, cfg: PrepareConfig) -> tuple[ImageSource, dict[str, Any]]:
    """The images of ``src`` (of ``cfg.split``) and what the CelebA layout says of them;
    no images, or with ``--strict`` a file that is not one, is an error."""
    source, info = resolve_source(src, cfg.split)
    if not source.names:
        extra = f" ({len(source.skipped)} files that are not images)" if source.skipped else ""
        raise FaceganError(f"{src}: no images found{extra}")
    if cfg.strict and source.skipped:
        name, reason = source.skipped[0]
        raise FaceganError(f"{source.path}/{name}: {reason} (--strict)")
    return source, info


def _resume_key(source: ImageSource, cfg: PrepareConfig) -> tuple[str, dict[str, str]]:
    """The key an unfinished run is resumed under only if equal (which files, in which order,
    which options and library versions), and those versions (recorded in the sidecar)."""
    import PIL
    import torchvision

    versions = {"pillow": PIL.__version__, "torchvision": torchvision.__version__}
    key = hashlib.sha256(json.dumps({
        "format": CACHE_FORMAT, "chunks": _CHUNK_FORMAT, "source": str(source.path.resolve()),
        "list": list_hash(source.names), "size": cfg.size, "small": cfg.small, "chunk": cfg.chunk,
        "versions": versions,
    }, sort_keys=True).encode()).hexdigest()
    return key, versions


def _open_work(work: Path, key: str, src: str | os.PathLike, resume: bool, log) -> None:
    """The work folder of this run: another run's (other key, or ``--no-resume``) discarded, the
    key recorded, a killed run's half-written files removed."""
    key_file = work / "key.json"
    if work.exists():
        old = None
        try:
            old = json.loads(key_file.read_text()).get("key")
        except (OSError, ValueError):
            pass
        if old != key or not resume:
            why = "--no-resume" if resume is False else "the file list or options changed"
            log(f"prepare: discarding the unfinished run in {work} ({why})")
            shutil.rmtree(work)
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{work}: cannot create the work folder: {exc.strerror}") from exc
    if not key_file.exists():
        atomic_write(key_file, lambda f: f.write(json.dumps({"key": key, "src": str(src)}).encode()))
    clean_stale_temps(work)  # half-written files of a killed run


def _reusable_chunks(reader: ImageSource | TarSpool, work: Path, jobs: list[tuple[int, int, int]],
                     cfg: PrepareConfig, log) -> dict[int, dict[str, Any]]:
    """The finished chunks of an earlier run whose output and input files still hash as recorded."""
    metas: dict[int, dict[str, Any]] = {}
    for index, start, stop in jobs:
        meta = _finished_chunk(work, index, start, stop, cfg.size, cfg.strict)
        if meta is not None:
            metas[index] = meta
    if metas:
        log(f"prepare: checking {len(metas)} finished chunks in {work} (hashing their input files)")
        changed = _check_inputs(reader, jobs, metas)
        if changed:
            log(f"prepare: the input files of {len(changed)} finished chunk(s) changed since: redoing "
                f"them (first: chunk {changed[0]})")
    return metas


def _run_chunks(reader: ImageSource | TarSpool, source: ImageSource, work: Path, jobs: list[tuple[int, int, int]],
                metas: dict[int, dict[str, Any]], cfg: PrepareConfig, progress: bool) -> None:
    """Process every chunk not in ``metas`` (in worker processes when there are several), adding
    each record to ``metas`` as it finishes, so that an interruption keeps what is done."""
    from tqdm import tqdm

    todo = [j for j in jobs if j[0] not in metas]
    done_images = sum(stop - start for i, start, stop in jobs if i in metas)
    bar = tqdm(total=len(source.names), initial=done_images, unit="img", desc="prepare",
               disable=None if progress else True, dynamic_ncols=True, smoothing=0.1)
    initargs = (reader, str(work), cfg.size, cfg.small, cfg.strict)
    n_workers = _n_workers(cfg.workers, len(todo))
    executor = None
    try:
        if n_workers == 1 or len(todo) <= 1:
            _init_worker(*initargs)
            results = map(_process_chunk, todo)
        else:
            reader.close()  # no open handle may be shared across fork
            # ProcessPoolExecutor, not multiprocessing.Pool: Pool.terminate() on the error path
            # could hang for good (its _help_stuff_finish waits on the task queue's lock; seen
            # here once in ~6 test runs); shutting an executor down only cancels what has not started.
            executor = ProcessPoolExecutor(n_workers, mp_context=_pool_context(),
                                           initializer=_init_pool_worker, initargs=initargs)
            results = (f.result() for f in as_completed([executor.submit(_process_chunk, job) for job in todo]))
        for meta in results:
            if "error" in meta:
                name, reason = meta["error"]
                raise FaceganError(f"{source.path}/{name}: {reason} (--strict: nothing written)")
            metas[meta["index"]] = meta
            bar.update(meta["stop"] - meta["start"])
    finally:
        bar.close()
        if executor is not None:  # waits only for the chunks already running (one per worker)
            executor.shutdown(wait=True, cancel_futures=True)
        _WORKER.clear()


@dataclass
class _Totals:
    """What the chunks found, summed over them in cache order."""

    count: int
    skipped: list[tuple[str, str]]
    """The source's non-image files, then each chunk's unusable images."""
    converted: dict[str, int]
    upsampled: list[str]
    rotated: int


def _totals(source: ImageSource, ordered: list[dict[str, Any]]) -> _Totals:
    """The chunks' records (in cache order) summed."""
    converted: dict[str, int] = {}
    for m in ordered:
        for mode, n in m["converted"].items():
            converted[mode] = converted.get(mode, 0) + n
    return _Totals(
        count=sum(m["good"] for m in ordered),
        skipped=[tuple(x) for x in source.skipped] + [tuple(s) for m in ordered for s in m["skipped"]],
        converted=converted,
        upsampled=[n for m in ordered for n in m["upsampled"]],
        rotated=sum(m["rotated"] for m in ordered),
    )


def _sidecar(info: dict[str, Any], names: list[str], cfg: PrepareConfig, totals: _Totals,
             versions: dict[str, str], seconds: float) -> dict[str, Any]:
    """The cache's JSON sidecar: where the images came from, how they were made, what was left out."""
    return {
        "format": CACHE_FORMAT,
        **info,
        "file_list_sha256": list_hash(names),
        "order": "the source's sorted file names, skipped files removed",
        "listed": len(names),
        "count": totals.count,
        "shape": [totals.count, cfg.size, cfg.size, 3],
        "dtype": "uint8",
        "transform": (f"PIL RGB -> torchvision Resize({cfg.size}) (bilinear, antialias) -> "
                      f"CenterCrop({cfg.size}); train-time: x / 127.5 - 1"),
        "conversions": "EXIF orientation applied; 16-bit scaled by 1/257; alpha over white; "
                       "other modes via PIL convert('RGB')",
        "small_images": cfg.small,
        "skipped": [{"name": n, "reason": r} for n, r in totals.skipped],
        "upsampled": totals.upsampled,
        "converted": totals.converted,
        "rotated": totals.rotated,
        "versions": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 2),
    }
