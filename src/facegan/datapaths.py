"""What a ``--data`` / ``SRC`` path holds, told apart before anything is read.

``facegan train`` reads the prepared uint8 cache (a ``.npy``); ``facegan prepare`` reads photos.
Each is handed the other often enough (a folder that holds the cache, the cache where photos go)
that both say what the path is and the exact command that fits, instead of an OS error or
"no images found".
"""

from __future__ import annotations

import os
from pathlib import Path

from facegan.errors import FaceganError

_ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")


def prepared_caches_in(folder: Path) -> list[Path]:
    """The ``.npy`` files directly in ``folder`` (prepared caches, those with a sidecar first)."""
    try:
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".npy" and p.is_file())
    except OSError:
        return []
    return sorted(found, key=lambda p: not p.with_suffix(".json").is_file())


def _has_images(folder: Path) -> bool:
    from facegan.images import is_image_name

    for _root, _dirs, files in os.walk(folder):
        if any(is_image_name(f) for f in files):
            return True
    return False


def check_train_data(data: str) -> None:
    """Raise a :class:`FaceganError` saying what to do when ``data`` is not a prepared cache."""
    path = Path(data)
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.is_dir():
        caches = prepared_caches_in(path)
        if caches:
            raise FaceganError(
                f"{data}: a folder; it holds the prepared cache {caches[0]}, which --data takes itself: "
                f"--data {caches[0]}")
        if not _has_images(path):
            raise FaceganError(f"{data}: a folder with neither photos nor a prepared cache (.npy); --data takes "
                               "the .npy written by 'facegan prepare PHOTOS -o CACHE.npy'")
    if path.is_dir() or suffixes.endswith(_ARCHIVES):
        cache = path.with_name(path.name.split(".")[0] + "64.npy")
        raise FaceganError(
            f"{data}: {'a folder' if path.is_dir() else 'an archive'} of photos, but --data takes the prepared cache "
            f"(a .npy). Prepare it once with\n  facegan prepare {data} -o {cache}\nthen train with --data {cache} "
            f"(or let 'facegan run --data {data}' do both)"
        )
    if not path.exists():
        raise FaceganError(f"{data}: no such file (--data takes the .npy cache written by 'facegan prepare')")


def check_photo_source(src: str) -> None:
    """For ``facegan prepare SRC``: a ``.npy`` (a cache already) or a folder holding only a
    cache is said to be one, with the command that trains on it."""
    path = Path(src)
    if path.suffix.lower() in (".npy", ".npz") and path.is_file():
        what = "FID statistics" if path.suffix.lower() == ".npz" else "a NumPy array (a prepared cache?)"
        raise FaceganError(f"{src}: {what}, not photos; 'facegan prepare' reads a folder or .zip/.tar of photos"
                           + (f". To train on it: facegan train --data {src} --out runs/NAME --minutes 60"
                              if path.suffix.lower() == ".npy" else ""))
    if path.is_dir() and not _has_images(path):
        caches = prepared_caches_in(path)
        if caches:
            raise FaceganError(f"{src}: holds no photos but the prepared cache {caches[0]}: it is prepared already; "
                               f"train with: facegan train --data {caches[0]} --out runs/NAME --minutes 60")
