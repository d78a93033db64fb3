"""Helpers of the grading tests: submissions built in a folder, and a stand-in for the Inception.

The grading logic (checks, cache, ranking, outputs) does not depend on what the network computes,
so these tests score with :class:`StandIn` — a fixed random map of 8x8 colour thumbnails to 64
"features" (a 2048-wide Fréchet distance takes seconds on a busy CPU) — and run in seconds;
``tests/test_fid_conformance.py`` checks the real network. The :func:`stand_in` fixture makes
every scorer the commands build the stand-in, and the grader expect its width.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegan.fid.stats import Stats

DIMS = 64


class StandIn:
    """The part of :class:`facegan.fid.features.FIDScorer` that grading uses, without a network."""

    weights_sha256 = "5" * 64

    def __init__(self):
        self.proj = np.random.default_rng(123).standard_normal((192, DIMS)).astype(np.float32) / 8
        self.calls: list[int] = []

    def features(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        k = images.shape[1] // 8
        thumbs = images.reshape(len(images), 8, k, 8, k, 3).mean(axis=(2, 4)).reshape(len(images), -1) / 255
        return np.tanh(thumbs.astype(np.float32) @ self.proj).astype(np.float64)

    def statistics(self, images, total=None, **provenance) -> Stats:
        if not hasattr(images, "shape"):  # an iterable of batches, as FIDScorer takes
            images = np.concatenate(list(images))
        f = self.features(images)
        self.calls.append(len(f))
        return Stats(f.mean(axis=0), np.cov(f, rowvar=False), len(f), weights_sha256=self.weights_sha256, **provenance)


@pytest.fixture
def stand_in(monkeypatch):
    """The scorer every command makes is a :class:`StandIn`; graders expect its width."""
    import facegan.grade
    from facegan.fid.options import ScorerOptions

    scorer = StandIn()
    monkeypatch.setattr(ScorerOptions, "scorer", lambda self, **kw: scorer)
    monkeypatch.setattr(facegan.grade, "FEATURE_DIMS", DIMS)
    return scorer


def graded(entries, grader, progress: bool = True, say=None):
    """What ``facegan grade`` does with a grader: grade the entries, then write the results files
    from the rows (:func:`facegan.grade.grade` itself writes only its caches and grids)."""
    from facegan.grade import grade, run_info
    from facegan.leaderboard import write_results

    rows = grade(entries, grader, progress=progress, say=say)
    write_results(grader.out, run_info(grader), rows)
    return rows


def images(seed: int, n: int, brightness: int = 0) -> np.ndarray:
    """``n`` distinct 64x64 images: smooth random blobs (so thumbnails and copies behave like photos)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 200, (n, 8, 8, 3)).astype(np.float32)
    big = np.asarray([np.asarray(Image.fromarray(c.astype(np.uint8)).resize((64, 64), Image.BICUBIC)) for c in coarse])
    noise = rng.integers(0, 4, big.shape)  # a little grain, as photos have: JPEG keeps most of it
    return (big.astype(np.int32) + noise + brightness).clip(0, 255).astype(np.uint8)


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def archive(path: Path, files: dict[str, bytes] | list[tuple[str, bytes]], fmt=tarfile.GNU_FORMAT) -> Path:
    """A .tar.gz of ``files`` (names may hold any character)."""
    with tarfile.open(path, "w:gz", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for name, data in (files.items() if isinstance(files, dict) else files):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def submission(path: Path, imgs: np.ndarray, folder: str | None = None) -> Path:
    """``path`` (``<student>.tar.gz``) holding ``imgs`` as ``<student>/0000.png`` ..."""
    folder = folder if folder is not None else path.name.split(".")[0]
    return archive(path, {f"{folder}/{i:04d}.png": png(im) for i, im in enumerate(imgs)})


def huge_canvas_png(width: int, height: int) -> bytes:
    """A few-hundred-byte PNG whose header claims width x height (CRC kept valid)."""
    data = bytearray(png(np.zeros((64, 64, 3), np.uint8)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def reference(path: Path, scorer: StandIn, imgs: np.ndarray, **extra) -> Path:
    """Reference statistics of ``imgs`` as the stand-in sees them (not counted in its calls)."""
    f = scorer.features(imgs)
    st = Stats(f.mean(axis=0), np.cov(f, rowvar=False), len(f), weights_sha256=scorer.weights_sha256)
    for key, value in extra.items():
        setattr(st, key, value)
    st.save(path)
    return path
