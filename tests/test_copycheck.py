"""The copy check: (near-)copies of training photos found — exact, mirrored, re-encoded, shifted —
distinct images left alone, and the count in every output of ``grade``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from gradekit import images, reference, stand_in, submission  # noqa: F401 (fixture)
from PIL import Image

from facegan.cli import main
from facegan.copycheck import THRESHOLD, CopyIndex
from facegan.errors import FaceganError

#: float results: run again with the kernels forced down in CI (.ci/forced-kernels)
pytestmark = pytest.mark.numeric

CELEBA = Path(__file__).resolve().parents[1].parent / "shared/data/celeba-10k"


def jpeg(imgs: np.ndarray, quality: int = 75) -> np.ndarray:
    out = []
    for im in imgs:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, "JPEG", quality=quality)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return np.stack(out)


def shift(imgs: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Moved by (dy, dx) pixels, the border repeated (what a careless crop-and-pad does)."""
    pad = np.pad(imgs, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    return pad[:, 2 - dy : 2 - dy + imgs.shape[1], 2 - dx : 2 - dx + imgs.shape[2]]


ALTERATIONS = {
    "exact": lambda x: x,
    "mirrored": lambda x: x[:, :, ::-1],
    "jpeg q75": jpeg,
    "shifted 1 px": lambda x: shift(x, 0, 1),
    "shifted 1 px diagonally": lambda x: shift(x, 1, -1),
    "mirrored, shifted, jpeg": lambda x: jpeg(shift(x[:, :, ::-1], -1, 1)),
}


@pytest.fixture(scope="module")
def train():
    return images(1, 300)


@pytest.mark.parametrize("name", list(ALTERATIONS))
def test_altered_copies_are_found_with_their_photo(train, name):
    index = CopyIndex.from_array(train)
    picked = np.arange(0, 300, 15)
    copies = index.find_copies(ALTERATIONS[name](train[picked]))
    assert [c.image for c in copies] == list(range(len(picked)))
    assert [c.train for c in copies] == list(picked)
    assert all(c.similarity >= THRESHOLD for c in copies)
    assert all(c.flipped == ("mirrored" in name) for c in copies)
    if name == "shifted 1 px":
        assert {c.shift for c in copies} == {(0, -1)}


def test_distinct_images_are_not_copies(train):
    index = CopyIndex.from_array(train)
    others = images(2, 200)
    assert index.count_copies(others) == 0
    assert index.count_copies(np.concatenate([others, train[:7]])) == 7


def test_wrong_shapes_are_named_and_the_fingerprint_follows_the_settings(train):
    with pytest.raises(FaceganError, match="training images: expected uint8 images"):
        CopyIndex.from_array(train.astype(np.float32))
    index = CopyIndex.from_array(train)
    with pytest.raises(FaceganError, match="images of .*32, 32, 3.* training photos"):
        index.find_copies(np.zeros((2, 32, 32, 3), np.uint8))
    assert index.find_copies(np.zeros((0, 64, 64, 3), np.uint8)) == []
    assert index.fingerprint != CopyIndex.from_array(train, threshold=0.9).fingerprint
    assert index.fingerprint == CopyIndex.from_array(train.copy()).fingerprint


def test_grade_counts_copies_in_every_output(stand_in, tmp_path, capsys):
    n = 8
    train = images(1, 300)
    np.save(tmp_path / "train.npy", train)
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    sub = tmp_path / "subs"
    sub.mkdir()
    submission(sub / "20250001.tar.gz", jpeg(train[10 : 10 + n][:, :, ::-1]))  # handed in the data set
    submission(sub / "20250002.tar.gz", images(2, n))  # honest
    out = tmp_path / "r"
    assert main(["grade", str(sub), "--ref", str(ref), "-o", str(out), "--count", str(n), "--quiet",
                 "--train-images", str(tmp_path / "train.npy"), "--target", "1e9"]) == 0
    text = capsys.readouterr().out
    assert "copies" in text.splitlines()[0] and f"warning: {n} image(s) are copies of training photos" in text
    with open(out / "scores.csv", newline="") as f:
        table = {r["student"]: r for r in csv.DictReader(f)}
    assert (table["20250001"]["copies"], table["20250001"]["pass"]) == (str(n), "review")
    assert (table["20250002"]["copies"], table["20250002"]["pass"]) == ("0", "pass")
    data = json.loads((out / "scores.json").read_text())
    assert {s["student"]: s["copies"] for s in data["submissions"]} == {"20250001": n, "20250002": 0}
    assert data["copy_check"]["photos"] == 300 and data["summary"]["with_copies"] == 1
    first = next(s for s in data["submissions"] if s["student"] == "20250001")
    assert "20250001/0000.png ≈ training photo #10 mirrored" in first["copy_examples"][0]
    page = (out / "index.html").read_text()
    assert f"<td data-v='{n}'>{n}</td>" in page and "Copy check against 300 training photos" in page
    np.save(tmp_path / "small.npy", train[:, ::2, ::2])
    assert main(["grade", str(sub), "--ref", str(ref), "-o", str(out), "--count", str(n), "--quiet",
                 "--train-images", str(tmp_path / "small.npy")]) == 2
    assert "small.npy: 32x32 photos, but submissions hold 64x64 images" in capsys.readouterr().err


@pytest.mark.realdata
def test_on_real_photos_copies_are_found_and_held_out_photos_are_not(tmp_path):
    """The bench's measurement in small (bench/copycheck_quality.py does it on all 10,000)."""
    if not CELEBA.is_dir():
        pytest.skip(f"real photos not present at {CELEBA}")
    from facegan.data.transform import prepare_image

    files = sorted(CELEBA.glob("*.jpg"))[:2000]
    photos = np.stack([prepare_image(f.read_bytes(), f.name)[0] for f in files])
    train, held = photos[:1000], photos[1000:]
    index = CopyIndex.from_array(train)
    for name, alter in ALTERATIONS.items():
        assert index.count_copies(alter(train[::10])) == 100, name
    assert index.count_copies(held) <= 5  # CelebA holds a few true duplicates across the split
