"""``facegan fid SAMPLES REF --train-images celeba64.npy``: how many samples are (near-)copies of
training photos, in the text output and in ``--json``, found in the pass that scores them (each
sample decoded once). Scored with the stand-in of ``test_fid_compare`` (no network)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from gradekit import images
from PIL import Image
from test_fid_compare import stand_in  # noqa: F401 (fixture)

import facegan.fid.sources as sources
from facegan.cli import main
from facegan.copycheck import CopyIndex
from facegan.errors import FaceganError
from facegan.fid.comparison import compare

#: float results: run again with the kernels forced down in CI (.ci/forced-kernels)
pytestmark = pytest.mark.numeric

EXACT, MIRRORED = [2, 10, 33], [5, 40]


@pytest.fixture
def case(tmp_path) -> tuple[Path, Path, Path]:
    """(samples folder, reference folder, training .npy): 3 exact and 2 mirrored copies of
    training photos among 15 other images."""
    train = images(1, 50)
    np.save(tmp_path / "train.npy", train)
    samples = tmp_path / "samples"
    samples.mkdir()
    picked = [train[i] for i in EXACT] + [train[i][:, ::-1] for i in MIRRORED] + list(images(2, 15))
    for i, im in enumerate(picked):
        Image.fromarray(np.ascontiguousarray(im)).save(samples / f"{i:03d}.png")
    ref = tmp_path / "ref"
    ref.mkdir()
    for i, im in enumerate(images(3, 10)):
        Image.fromarray(im).save(ref / f"ref{i:03d}.png")
    return samples, ref, tmp_path / "train.npy"


@pytest.fixture
def decoded(monkeypatch) -> Counter:
    """How many times each image is decoded."""
    real, seen = sources._decode_rgb, Counter()

    def counting(data, name):
        seen[name] += 1
        return real(data, name)

    monkeypatch.setattr(sources, "_decode_rgb", counting)
    return seen


def test_copies_are_counted_in_the_scoring_pass(case, stand_in, decoded):
    samples, ref, train = case
    result = compare(samples, ref, stand_in, kid_subsets=0, copy_index=CopyIndex.from_file(train))
    c = result.copies
    assert (c.copies, c.checked, c.other_size) == (5, 20, 0)
    assert set(decoded.values()) == {1} and len(decoded) == 30  # every image of A and B decoded once
    assert stand_in.images_seen == 30
    assert c.examples[0] == "000.png ≈ training photo #2 (similarity 1.000)"
    assert [e.split(" ")[0] for e in c.examples] == [f"{i:03d}.png" for i in range(5)]
    assert all("mirrored" in e for e in c.examples[3:]) and not any("mirrored" in e for e in c.examples[:3])
    assert result.to_dict()["copies"]["copies"] == 5
    assert compare(samples, ref, stand_in, kid_subsets=0).copies is None  # not asked: not done

    rows = np.stack([np.asarray(Image.open(p)) for p in sorted(samples.iterdir())])  # an in-memory array
    by_rows = compare(rows, ref, stand_in, kid_subsets=0, copy_index=CopyIndex.from_file(train)).copies
    assert by_rows.copies == 5 and by_rows.examples[4].startswith("row 4 ≈ training photo #40 mirrored")


def test_fid_prints_the_count_and_puts_it_in_the_json(case, stand_in, capsys):
    samples, ref, train = case
    args = ["fid", str(samples), str(ref), "--train-images", str(train), "--kid-subsets", "0", "--quiet"]
    assert main(args) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("copies"))
    assert line.startswith(f"copies 5 of 20 images of A are (near-)copies of training photos ({train}), e.g. 000.png")
    assert main(args + ["--json"]) == 0
    copies = json.loads(capsys.readouterr().out)["copies"]
    assert copies["copies"] == 5 and copies["checked"] == 20 and copies["train_images"] == str(train)
    assert len(copies["examples"]) == 5
    assert main(args[:3] + ["--kid-subsets", "0", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["copies"] is None


def test_an_array_of_other_sized_images_or_statistics_are_refused_before_scoring(case, stand_in, tmp_path):
    samples, ref, train = case
    np.save(tmp_path / "small.npy", np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(FaceganError, match=r"small.npy: images of 32x32, but the training photos .* are 64x64"):
        compare(tmp_path / "small.npy", ref, stand_in, kid_subsets=0, copy_index=CopyIndex.from_file(train))
    stand_in_stats = compare(samples, ref, stand_in, kid_subsets=0).a.stats
    stand_in_stats.save(tmp_path / "a.npz")
    stand_in.images_seen = 0
    with pytest.raises(FaceganError, match=r"a.npz: statistics hold no images: the copy check"):
        compare(tmp_path / "a.npz", ref, stand_in, copy_index=CopyIndex.from_file(train))
    assert stand_in.images_seen == 0


def test_images_of_another_size_in_a_folder_are_counted_as_not_checked(case, stand_in):
    samples, ref, train = case
    for i in range(2):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(samples / f"small{i}.png")
    result = compare(samples, ref, stand_in, kid_subsets=0, copy_index=CopyIndex.from_file(train))
    assert (result.copies.copies, result.copies.checked, result.copies.other_size) == (5, 20, 2)
    assert any("2 image(s) not of the training photos' size 64x64: not checked for copies" in w
               for w in result.warnings)


def test_a_wrong_samples_path_fails_before_the_training_photos_are_read(case, stand_in, tmp_path, capsys):
    samples, ref, train = case
    assert main(["fid", str(tmp_path / "nope"), str(ref), "--train-images", str(tmp_path / "none.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"facegan: error: {tmp_path / 'nope'}: no such file") and err.count("\n") == 1
    assert main(["fid", str(samples), str(ref), "--train-images", str(tmp_path / "none.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"facegan: error: {tmp_path / 'none.npy'}: ") and err.count("\n") == 1
