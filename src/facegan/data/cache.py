"""``prepare``: photos -> a uint8 (N, S, S, 3) training cache, chunked, parallel and resumable.

:func:`prepare` decodes every photo once (with :func:`facegan.data.transform.prepare_image`), in
worker processes, in chunks:

* each chunk is written to ``<out>.partial/`` (atomically) and is the unit of progress and resume;
  the work folder is keyed by a hash of the file list, the files' sizes/mtimes and the options, so
  a re-run after Ctrl-C or ``kill`` reuses the finished chunks, and a changed input restarts;
* the final array is assembled inside the work folder and renamed onto ``out`` only when complete,
  so ``out`` is always either absent, the previous result or the new one; the JSON sidecar
  (:func:`sidecar_path`) is renamed right after it.

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
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facegan.data.celeba import resolve_source
from facegan.data.transform import prepare_image
from facegan.errors import BadImageError, FaceganError
from facegan.fileio import atomic_write, clean_stale_temps
from facegan.images import ImageSource

#: Bumped when the cache's content for the same input would change (part of the resume key).
CACHE_FORMAT = "facegan-cache/1"


@dataclass
class PrepareConfig:
    """Options of ``facegan prepare`` (each becomes a ``--option``)."""

    size: int = 64
    """Side of the output images: torchvision Resize(size) then CenterCrop(size)."""
    split: Literal["all", "train", "valid", "test"] = "all"
    """CelebA split from list_eval_partition.txt (needs the CelebA layout for anything but all)."""
    workers: int = 0
    """Worker processes decoding images (0: one per CPU core)."""
    chunk: int = 512
    """Images per work unit: the unit of progress, of parallel work and of resume."""
    small: Literal["upsample", "skip"] = "upsample"
    """Images with a side under --size: upsample them (the brief's Resize does) or skip them."""
    strict: bool = False
    """Fail on the first unusable file (bad image, or non-image file in SRC) instead of skipping
    and listing it."""
    resume: bool = True
    """Reuse the finished chunks of an interrupted run on the same files and options."""

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
# The resume key: which files, in which order, unchanged


def list_hash(names: list[str]) -> str:
    """sha256 of the ordered file list (identifies which images, in which order)."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _fingerprint(source: ImageSource) -> str:
    """Hash of the files' sizes and mtimes, so an edited file invalidates a resume."""
    h = hashlib.sha256()
    if source.kind == "folder":
        for name in source.names:
            st = (source.path / name).stat()
            h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    else:
        st = source.path.stat()
        h.update(f"{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Workers: one chunk of images -> chunk-XXXXXX.npy + .json in the work folder

_WORKER: dict[str, Any] = {}


def _init_worker(source: ImageSource, work: str, size: int, small: str, strict: bool) -> None:
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
    source: ImageSource = w["source"]
    size, small, strict = w["size"], w["small"], w["strict"]
    arrays, skipped, upsampled, converted, rotated = [], [], [], {}, 0
    for name in source.names[start:stop]:
        try:
            arr, notes = prepare_image(source.read_bytes(name), name, size)
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
    meta = {"index": index, "start": start, "stop": stop, "good": len(arrays),
            "skipped": skipped, "upsampled": upsampled, "converted": converted,
            "rotated": rotated}
    npy, js = _chunk_paths(w["work"], index)
    atomic_write(npy, lambda f: np.save(f, stack, allow_pickle=False))
    # The .json is written last: its presence marks the chunk as finished.
    atomic_write(js, lambda f: f.write(json.dumps(meta).encode()))
    return meta


def _finished_chunk(work: Path, index: int, start: int, stop: int, size: int,
                    strict: bool) -> dict[str, Any] | None:
    """The summary of an already finished chunk, or None when it must be (re)done."""
    npy, js = _chunk_paths(work, index)
    try:
        meta = json.loads(js.read_text())
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if (meta.get("start"), meta.get("stop")) != (start, stop) or arr.shape != (meta["good"], size, size, 3):
        return None
    if strict and meta["skipped"]:
        return None  # a non-strict run skipped something: redo it so strict mode can fail on it
    return meta


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
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(requested or cores, n_jobs))


def _pool_context():
    # fork starts workers instantly with torchvision already imported; elsewhere spawn is safe.
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


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
    from tqdm import tqdm

    cfg = cfg or PrepareConfig()
    out = Path(out)
    if out.suffix != ".npy":
        raise FaceganError(f"{out}: the cache must be a .npy file (e.g. data/celeba64.npy)")
    if out.is_dir():
        raise FaceganError(f"{out}: is a folder; give the .npy file to write")
    t0 = time.perf_counter()
    source, info = resolve_source(src, cfg.split)
    names = source.names
    if not names:
        extra = f" ({len(source.skipped)} files that are not images)" if source.skipped else ""
        raise FaceganError(f"{src}: no images found{extra}")
    if cfg.strict and source.skipped:
        name, reason = source.skipped[0]
        raise FaceganError(f"{source.path}/{name}: {reason} (--strict)")

    import PIL
    import torchvision

    versions = {"pillow": PIL.__version__, "torchvision": torchvision.__version__}
    key = hashlib.sha256(json.dumps({
        "format": CACHE_FORMAT, "source": str(source.path.resolve()), "list": list_hash(names),
        "files": _fingerprint(source), "size": cfg.size, "small": cfg.small, "chunk": cfg.chunk,
        "versions": versions,
    }, sort_keys=True).encode()).hexdigest()

    work = work_dir(out)
    key_file = work / "key.json"
    if work.exists():
        old = None
        try:
            old = json.loads(key_file.read_text()).get("key")
        except (OSError, ValueError):
            pass
        if old != key or not cfg.resume:
            why = "--no-resume" if cfg.resume is False else "the files or options changed"
            log(f"prepare: discarding the unfinished run in {work} ({why})")
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not key_file.exists():
        atomic_write(key_file, lambda f: f.write(json.dumps({"key": key, "src": str(src)}).encode()))
    clean_stale_temps(work)  # half-written files of a killed run

    jobs = [(i, s, min(s + cfg.chunk, len(names))) for i, s in enumerate(range(0, len(names), cfg.chunk))]
    metas: dict[int, dict[str, Any]] = {}
    for index, start, stop in jobs:
        meta = _finished_chunk(work, index, start, stop, cfg.size, cfg.strict)
        if meta is not None:
            metas[index] = meta
    todo = [j for j in jobs if j[0] not in metas]
    resumed = len(metas)
    if info.get("missing_count"):
        log(f"prepare: {info['missing_count']} files of split '{cfg.split}' in the partition file "
            f"are not among the images (first: {info['missing_first'][0]})")
    if resumed:
        log(f"prepare: resuming: {resumed} of {len(jobs)} chunks already done in {work}")

    done_images = sum(stop - start for i, start, stop in jobs if i in metas)
    bar = tqdm(total=len(names), initial=done_images, unit="img", desc="prepare",
               disable=None if progress else True, dynamic_ncols=True, smoothing=0.1)
    initargs = (source, str(work), cfg.size, cfg.small, cfg.strict)
    n_workers = _n_workers(cfg.workers, len(todo))
    executor = None
    try:
        if n_workers == 1 or len(todo) <= 1:
            _init_worker(*initargs)
            results = map(_process_chunk, todo)
        else:
            source.close()  # no archive handle may be shared across fork
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
    except KeyboardInterrupt:
        bar.close()
        log(f"prepare: interrupted; {len(metas)} of {len(jobs)} chunks kept in {work}: "
            "run the same command again to resume")
        raise
    finally:
        bar.close()
        if executor is not None:  # waits only for the chunks already running (one per worker)
            executor.shutdown(wait=True, cancel_futures=True)
        _WORKER.clear()

    ordered = [metas[i] for i, _, _ in jobs]
    count = sum(m["good"] for m in ordered)
    skipped = [tuple(x) for x in source.skipped] + [tuple(s) for m in ordered for s in m["skipped"]]
    if count == 0:
        shown = "; ".join(f"{n}: {r}" for n, r in skipped[:5])
        raise FaceganError(f"{src}: none of the {len(names)} images could be used ({shown})")
    converted: dict[str, int] = {}
    for m in ordered:
        for mode, n in m["converted"].items():
            converted[mode] = converted.get(mode, 0) + n
    upsampled = [n for m in ordered for n in m["upsampled"]]

    # Assemble inside the work folder (same file system), then rename onto `out`.
    tmp_out = work / "assembled.npy"
    arr = np.lib.format.open_memmap(tmp_out, mode="w+", dtype=np.uint8,
                                    shape=(count, cfg.size, cfg.size, 3))
    pos = 0
    for m in ordered:
        part = np.load(_chunk_paths(work, m["index"])[0], allow_pickle=False)
        arr[pos:pos + len(part)] = part
        pos += len(part)
    arr.flush()
    del arr
    with open(tmp_out, "rb+") as f:
        os.fsync(f.fileno())

    seconds = time.perf_counter() - t0
    meta = {
        "format": CACHE_FORMAT,
        **info,
        "file_list_sha256": list_hash(names),
        "order": "the source's sorted file names, skipped files removed",
        "listed": len(names),
        "count": count,
        "shape": [count, cfg.size, cfg.size, 3],
        "dtype": "uint8",
        "transform": (f"PIL RGB -> torchvision Resize({cfg.size}) (bilinear, antialias) -> "
                      f"CenterCrop({cfg.size}); train-time: x / 127.5 - 1"),
        "conversions": "EXIF orientation applied; 16-bit scaled by 1/257; alpha over white; "
                       "other modes via PIL convert('RGB')",
        "small_images": cfg.small,
        "skipped": [{"name": n, "reason": r} for n, r in skipped],
        "upsampled": upsampled,
        "converted": converted,
        "rotated": sum(m["rotated"] for m in ordered),
        "versions": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 2),
    }
    side = sidecar_path(out)
    tmp_side = work / "sidecar.json"
    tmp_side.write_text(json.dumps(meta, indent=1) + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_out, out)
    os.replace(tmp_side, side)
    shutil.rmtree(work, ignore_errors=True)
    return PrepareReport(out, side, count, len(names), skipped, upsampled, converted,
                         resumed, seconds, meta)

