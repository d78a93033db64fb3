"""Finding the images: the CelebA layout, its train/valid/test splits, and fetching CelebA.

:func:`resolve_source` turns ``SRC`` into the list of images to prepare: torchvision's CelebA
layout (:func:`find_celeba`: ``ROOT``, ``ROOT/celeba``, ``img_align_celeba/`` or its ``.zip``),
filtered to a split from ``list_eval_partition.txt`` (:func:`read_partition`), or any other
folder (recursive) or .zip/.tar(.gz) of images via :func:`facegan.images.open_source`.

:func:`download_celeba` fetches CelebA with torchvision's downloader and, when that fails (as
the quota-limited Google Drive often makes it), says how to put the files in place by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facegan.errors import FaceganError
from facegan.images import ImageSource, open_source

#: CelebA's split codes in ``list_eval_partition.txt``.
CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}


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
