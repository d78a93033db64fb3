"""The brief's preprocessing and ``prepare``: photos -> a uint8 (N, S, S, 3) training cache.

The brief turns each photo into a 64x64 training image with torchvision's ``Resize(64)`` then
``CenterCrop(64)`` (then ``ToTensor()`` and a normalize to [-1, 1]). :func:`brief_transform`
calls those very torchvision ops on the PIL image, so the cache is byte-identical to what the
brief's pipeline sees; :func:`to_model_range` is the float conversion at the model's door.

:func:`prepare` decodes every photo once, in worker processes, in chunks:

* each chunk is written to ``<out>.partial/`` (atomically) and is the unit of progress and resume;
  the work folder is keyed by a hash of the file list, the files' sizes/mtimes and the options, so
  a re-run after Ctrl-C or ``kill`` reuses the finished chunks, and a changed input restarts;
* the final array is assembled inside the work folder and renamed onto ``out`` only when complete,
  so ``out`` is always either absent, the previous result or the new one; the JSON sidecar
  (:func:`sidecar_path`) is renamed right after it.

Input decisions (what a user expects from "a folder of faces"):

* grayscale, palette, CMYK, YCbCr... -> RGB with Pillow's ``convert``;
* 16-bit images -> 8-bit by scaling (``round(v / 257)``, 65535 -> 255), never by clipping;
* alpha (RGBA, LA, transparent palettes) -> composited on white, as a viewer shows it;
* an EXIF orientation tag is applied first (phone photos stand upright);
* images smaller than the target are upsampled by the same ``Resize`` (the brief's transform
  works on them) and listed as ``upsampled`` in the sidecar; ``--small skip`` skips them instead;
* empty, truncated, corrupt and non-image files are skipped and listed with the reason;
  ``--strict`` fails on the first one instead.

All counts and lists are in the sidecar. Order: the source's sorted names, skipped ones removed.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facegan.errors import BadImageError, FaceganError
from facegan.images import ImageSource, decode_image, open_source

#: Bumped when the cache's content for the same input would change (part of the resume key).
CACHE_FORMAT = "facegan-cache/1"
#: CelebA's split codes in ``list_eval_partition.txt``.
CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_16BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


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
# The transform


def to_rgb(img, name: str = "image"):
    """``(rgb_image, note)``: ``img`` as an 8-bit RGB PIL image; ``note`` names any conversion.

    ``note`` is ``None`` for RGB input, else the original mode (``"CMYK"``, ``"I;16"``...).
    Raises :class:`BadImageError` for images with no sensible RGB reading (float images).
    """
    from PIL import Image

    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img, None
    try:
        if mode in _16BIT_MODES:
            # 16-bit grey: Pillow's convert() would clip everything above 255 to white;
            # scale the full 0..65535 range onto 0..255 instead (65535 / 257 = 255 exactly).
            wide = np.asarray(img).astype(np.float64)
            img = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), "L")
            return img.convert("RGB"), mode
        if mode == "F":
            raise BadImageError(name, "a floating-point image (mode F): its value range is unknown")
        if mode in _ALPHA_MODES or "transparency" in img.info:
            # What a viewer shows: the transparent parts over a white page.
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB"), mode
        return img.convert("RGB"), mode
    except (ValueError, OSError) as exc:
        raise BadImageError(name, f"cannot convert mode {mode} to RGB ({exc})") from None


def upright(img):
    """``(image, rotated)``: ``img`` turned by its EXIF orientation tag, if it has one."""
    from PIL import ImageOps

    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a corrupt EXIF block is no reason to lose the picture
        return img, False
    if orientation in (None, 1):
        return img, False
    return ImageOps.exif_transpose(img), True


def brief_transform(img, size: int = 64) -> np.ndarray:
    """The brief's ``Compose([Resize(size), CenterCrop(size)])`` on an RGB PIL image -> uint8.

    These are torchvision's own functional ops with ``Resize``'s defaults (bilinear, antialias),
    not a reimplementation, so the pixels are the ones the brief's pipeline would produce.
    """
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    resized = TF.resize(img, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
    return np.asarray(TF.center_crop(resized, [size, size]), dtype=np.uint8)


def prepare_image(data: bytes, name: str, size: int = 64) -> tuple[np.ndarray, dict[str, Any]]:
    """Bytes of one photo -> ``(uint8 (size, size, 3), notes)`` or :class:`BadImageError`.

    ``notes`` has ``converted`` (original mode or None), ``rotated`` (bool) and ``original``
    (width, height after rotation).
    """
    img = decode_image(data, name)
    img, rotated = upright(img)
    img, converted = to_rgb(img, name)
    return brief_transform(img, size), {
        "converted": converted,
        "rotated": rotated,
        "original": img.size,
    }


def to_model_range(x):
    """uint8 images (N, H, W, 3) (torch or numpy) -> float32 (N, 3, H, W) in [-1, 1].

    ``x / 127.5 - 1`` is ``ToTensor()`` (x / 255) then ``Normalize(0.5, 0.5)`` ((v - .5) / .5) in
    one step on a whole batch; the two agree to float32 rounding (the test allows 2.5e-7; on torch
    2.14 CPU they are bit-identical for all 256 values).
    """
    import torch

    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = np.array(x)  # a read-only memmap slice: torch warns on wrapping it (uint8 copy, cheap)
    x = torch.as_tensor(x)
    return x.permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0


# ---------------------------------------------------------------------------------------------
# Finding the images: CelebA layout, splits


@dataclass
class CelebaLayout:
    """Where torchvision's CelebA layout keeps the aligned photos and the split file."""

    images: Path
    partition: Path | None


def find_celeba(src: str | os.PathLike) -> CelebaLayout | None:
    """The CelebA layout at or around ``src``, or ``None`` for any other folder or archive.

    Accepted: ``ROOT`` (holding ``celeba/``), ``ROOT/celeba``, ``ROOT/celeba/img_align_celeba``
    or ``img_align_celeba.zip``; the split file is ``list_eval_partition.txt`` (torchvision) or
    ``list_eval_partition.csv`` (the Kaggle copy) next to the images.
    """
    src = Path(src)
    if src.name in ("img_align_celeba", "img_align_celeba.zip"):
        bases = [src.parent]
    else:
        bases = [src, src / "celeba"]
    for base in bases:
        for images in (base / "img_align_celeba", base / "img_align_celeba.zip"):
            if images.exists():
                part = next(
                    (p for p in (base / "list_eval_partition.txt", base / "list_eval_partition.csv")
                     if p.is_file()),
                    None,
                )
                return CelebaLayout(images, part)
    return None


def read_partition(path: Path) -> dict[str, int]:
    """``{file name: split code}`` from ``list_eval_partition.txt`` (or the Kaggle ``.csv``)."""
    table: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            if lineno == 1:
                continue  # the CSV header "image_id,partition"
            raise FaceganError(f"{path}:{lineno}: expected 'NAME SPLIT', got {line!r}")
        table[parts[0]] = int(parts[1])
    return table


def resolve_source(src: str | os.PathLike, split: str = "all") -> tuple[ImageSource, dict[str, Any]]:
    """The images to prepare (already filtered to ``split``) and a description for the sidecar."""
    layout = find_celeba(src)
    info: dict[str, Any] = {"source": str(Path(src).resolve()), "split": split}
    if layout is None:
        if split != "all":
            raise FaceganError(
                f"{src}: --split {split} needs the CelebA layout (img_align_celeba/ with "
                "list_eval_partition.txt beside it); this is a plain folder or archive"
            )
        source = open_source(src)
        info["layout"] = source.kind
        return source, info
    source = open_source(layout.images)
    info.update(layout="celeba", images=str(layout.images.resolve()),
                partition=str(layout.partition) if layout.partition else None)
    if split == "all":
        return source, info
    if layout.partition is None:
        raise FaceganError(
            f"{layout.images.parent}: --split {split} needs list_eval_partition.txt next to "
            f"{layout.images.name} (download it with the images, or use --split all)"
        )
    table = read_partition(layout.partition)
    code = CELEBA_SPLITS[split]
    wanted = {n for n, c in table.items() if c == code}
    source.names = [n for n in source.names if n.rsplit("/", 1)[-1] in wanted]
    found = {n.rsplit("/", 1)[-1] for n in source.names}
    missing = sorted(wanted - found)  # e.g. a partial copy of CelebA: say so, but go on
    info["missing_count"], info["missing_first"] = len(missing), missing[:20]
    return source, info


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


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


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
    _write_atomic(npy, lambda f: np.save(f, stack, allow_pickle=False))
    # The .json is written last: its presence marks the chunk as finished.
    _write_atomic(js, lambda f: f.write(json.dumps(meta).encode()))
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
        _write_atomic(key_file, lambda f: f.write(json.dumps({"key": key, "src": str(src)}).encode()))
    for stale in work.glob("*.tmp-*"):
        stale.unlink(missing_ok=True)  # half-written files of a killed run

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
               disable=not progress, dynamic_ncols=True, smoothing=0.1)
    initargs = (source, str(work), cfg.size, cfg.small, cfg.strict)
    n_workers = _n_workers(cfg.workers, len(todo))
    pool = None
    try:
        if n_workers == 1 or len(todo) <= 1:
            _init_worker(*initargs)
            results = map(_process_chunk, todo)
        else:
            source.close()  # no archive handle may be shared across fork
            pool = _pool_context().Pool(n_workers, initializer=_init_pool_worker, initargs=initargs)
            results = pool.imap_unordered(_process_chunk, todo)
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
        if pool is not None:
            pool.terminate()
            pool.join()
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


# ---------------------------------------------------------------------------------------------
# --download


def _torchvision_celeba():
    """torchvision's CelebA dataset class (a seam so tests can stand in for the network)."""
    from torchvision.datasets import CelebA

    return CelebA


def download_celeba(root: str | os.PathLike) -> Path:
    """Fetch CelebA (aligned photos + split file) into ``root/celeba`` with torchvision.

    Returns ``root``. On failure raises :class:`FaceganError` that says what went wrong and how to
    put the files in place by hand.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        _torchvision_celeba()(root=str(root), split="all", target_type=[], download=True)
    except Exception as exc:  # gdown, HTTP, quota, md5, zip errors: all end the same way for a user
        hint = ""
        if "gdown" in str(exc):
            hint = "torchvision needs the 'gdown' package for this: pip install gdown, then retry. "
        raise FaceganError(
            f"{root}: downloading CelebA with torchvision failed: {exc}\n"
            f"  {hint}The files live on a quota-limited Google Drive that often refuses downloads "
            "for a day.\n  Get them by hand instead: from https://mmlab.ie.cuhk.edu.hk/projects/"
            "CelebA.html (Align&Cropped Images) download img_align_celeba.zip and "
            "Eval/list_eval_partition.txt,\n"
            f"  put both in {root / 'celeba'}/, unzip the zip there (it makes img_align_celeba/), "
            f"then run: facegan prepare {root} -o data/celeba64.npy"
        ) from None
    return root
