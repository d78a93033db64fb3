"""``prepare``: sources (folder, archive, CelebA layout + splits), bad files, sidecar, CLI."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

import facegan.data.cache as cache
import facegan.data.celeba as celeba
from facegan.cli import main
from facegan.data import PrepareConfig, list_hash, prepare, sidecar_path, work_dir
from facegan.errors import FaceganError
from facegan.images import load_uint8_array

CELEBA = Path(__file__).resolve().parents[1].parent / "shared/data/celeba-10k"
QUIET = dict(progress=False, log=lambda msg: None)


def photo(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([255 * xx / (w - 1), 255 * yy / (h - 1), np.full((h, w), seed * 37 % 256)], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 15, base.shape), 0, 255).astype(np.uint8))


def faces(folder: Path, n: int, fmt: str = "jpg", start: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        p = folder / f"{i:06d}.{fmt}"
        photo(89 + i % 5, 109 - i % 7, i).save(p)
        paths.append(p)
    return paths


def reference(path: Path, size: int = 64) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    return np.asarray(transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)])(img))


def test_folder_to_cache_identical_rows_and_sidecar(tmp_path):
    files = faces(tmp_path / "src" / "a", 7) + faces(tmp_path / "src" / "b", 4, "png", start=50)
    out = tmp_path / "cache" / "c.npy"
    report = prepare(tmp_path / "src", out, PrepareConfig(workers=2, chunk=3), **QUIET)
    arr = load_uint8_array(out)  # memory-mapped, shape-checked
    assert isinstance(arr, np.memmap) and arr.shape == (11, 64, 64, 3)
    for row, f in zip(arr, sorted(files)):  # recursive, sorted order
        assert np.array_equal(row, reference(f))
    side = json.loads(sidecar_path(out).read_text())
    names = [f.relative_to(tmp_path / "src").as_posix() for f in sorted(files)]
    assert side["count"] == report.count == 11 and side["shape"] == [11, 64, 64, 3]
    assert side["file_list_sha256"] == list_hash(names)
    assert side["source"] == str((tmp_path / "src").resolve()) and side["layout"] == "folder"
    assert "Resize(64)" in side["transform"] and side["skipped"] == []
    assert not work_dir(out).exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["c.json", "c.npy"]


def test_other_size(tmp_path):
    files = faces(tmp_path / "src", 3)
    out = tmp_path / "c32.npy"
    prepare(tmp_path / "src", out, PrepareConfig(size=32, workers=1), **QUIET)
    arr = np.load(out)
    assert arr.shape == (3, 32, 32, 3) and np.array_equal(arr[2], reference(files[2], 32))


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archives_give_the_same_cache_as_the_folder(tmp_path, kind):
    files = faces(tmp_path / "src", 6)
    arch = tmp_path / f"faces.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(arch, "w") as zf:
            for f in files:
                zf.write(f, f"imgs/{f.name}")
    else:
        with tarfile.open(arch, "w:gz") as tf:
            for f in files:
                tf.add(f, f"imgs/{f.name}")
    prepare(tmp_path / "src", tmp_path / "a.npy", PrepareConfig(workers=1), **QUIET)
    prepare(arch, tmp_path / "b.npy", PrepareConfig(workers=2, chunk=2), **QUIET)
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def _bad_folder(root: Path) -> dict[str, str]:
    """A folder with every kind of trouble; returns {name: expected reason fragment}."""
    faces(root, 3)
    (root / "empty.jpg").write_bytes(b"")
    good = io.BytesIO()
    photo(178, 218, 9).save(good, "JPEG")
    (root / "half.jpg").write_bytes(good.getvalue()[:2000])
    (root / "notes.jpg").write_text("not a picture")
    (root / "readme.txt").write_text("hello")
    Image.fromarray(np.full((70, 70), 0.5, np.float32)).save(root / "float.tif")
    photo(40, 30, 3).save(root / "tiny.png")
    photo(90, 100, 4).convert("CMYK").save(root / "cmyk.jpg")
    photo(90, 100, 5).convert("L").save(root / "grey.png")
    Image.fromarray(np.full((80, 80), 40000, np.uint16)).save(root / "deep.png")
    return {"empty.jpg": "empty", "half.jpg": "truncated", "notes.jpg": "not an image",
            "readme.txt": "not an image file", "float.tif": "floating-point"}


def test_bad_files_are_skipped_listed_and_conversions_counted(tmp_path):
    expected = _bad_folder(tmp_path / "src")
    out = tmp_path / "c.npy"
    report = prepare(tmp_path / "src", out, PrepareConfig(workers=2, chunk=4), **QUIET)
    # 3 faces + tiny (upsampled) + cmyk + grey + deep
    assert report.count == 7 and np.load(out).shape == (7, 64, 64, 3)
    side = json.loads(sidecar_path(out).read_text())
    reasons = {s["name"]: s["reason"] for s in side["skipped"]}
    assert set(reasons) == set(expected)
    for name, fragment in expected.items():
        assert fragment in reasons[name], (name, reasons[name])
    assert side["upsampled"] == ["tiny.png"]
    assert side["converted"] == {"CMYK": 1, "L": 1, "I;16": 1}
    assert side["listed"] == 11  # image-named files; readme.txt is listed as skipped only
    tiny_row = sorted(n for n in [*(f"{i:06d}.jpg" for i in (1, 2, 3)), "cmyk.jpg", "deep.png",
                                  "grey.png", "tiny.png"]).index("tiny.png")
    assert np.array_equal(np.load(out)[tiny_row], reference(tmp_path / "src" / "tiny.png"))


def test_small_skip_policy(tmp_path):
    faces(tmp_path / "src", 2)
    photo(40, 300, 3).save(tmp_path / "src" / "narrow.png")
    report = prepare(tmp_path / "src", tmp_path / "c.npy", PrepareConfig(small="skip", workers=1), **QUIET)
    assert report.count == 2 and report.skipped == [("narrow.png", "smaller than 64x64 (40x300)")]


def test_strict_fails_naming_the_file_and_writes_nothing(tmp_path):
    faces(tmp_path / "src", 4)
    (tmp_path / "src" / "000002.jpg").write_bytes(b"")
    out = tmp_path / "c.npy"
    with pytest.raises(FaceganError, match=r"000002\.jpg: empty file"):
        prepare(tmp_path / "src", out, PrepareConfig(strict=True, workers=2, chunk=1), **QUIET)
    assert not out.exists() and not sidecar_path(out).exists()


def test_strict_redoes_chunks_a_lenient_run_left(tmp_path, monkeypatch):
    faces(tmp_path / "src", 6)
    (tmp_path / "src" / "000001.jpg").write_bytes(b"junk")
    out = tmp_path / "c.npy"
    real = cache.prepare_image

    def stop_in_chunk_2(raw, name, size=64):
        if name == "000005.jpg":
            raise KeyboardInterrupt
        return real(raw, name, size)

    monkeypatch.setattr(cache, "prepare_image", stop_in_chunk_2)
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "src", out, PrepareConfig(workers=1, chunk=2), **QUIET)
    monkeypatch.setattr(cache, "prepare_image", real)
    with pytest.raises(FaceganError, match="000001.jpg: not an image"):
        prepare(tmp_path / "src", out, PrepareConfig(workers=1, chunk=2, strict=True), **QUIET)


def test_no_images_and_nothing_usable_are_errors(tmp_path):
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "a.txt").write_text("x")
    with pytest.raises(FaceganError, match="no images found"):
        prepare(tmp_path / "none", tmp_path / "c.npy", **QUIET)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"")
    with pytest.raises(FaceganError, match="none of the 1 images"):
        prepare(tmp_path / "bad", tmp_path / "c.npy", **QUIET)
    with pytest.raises(FaceganError, match=r"\.npy"):
        prepare(tmp_path / "bad", tmp_path / "c.bin", **QUIET)
    assert not (tmp_path / "c.npy").exists()


# --- CelebA layout ----------------------------------------------------------------------------


def _celeba(root: Path, csv: bool = False) -> Path:
    """root/celeba/img_align_celeba/000001..10.jpg + the split file (6 train, 2 valid, 2 test)."""
    base = root / "celeba"
    faces(base / "img_align_celeba", 10)
    splits = [0] * 6 + [1] * 2 + [2] * 2
    if csv:  # the Kaggle copy
        lines = ["image_id,partition"] + [f"{i:06d}.jpg,{s}" for i, s in enumerate(splits, 1)]
        (base / "list_eval_partition.csv").write_text("\n".join(lines) + "\n")
    else:
        lines = [f"{i:06d}.jpg {s}" for i, s in enumerate(splits, 1)]
        (base / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return base


@pytest.mark.parametrize("csv", [False, True])
def test_celeba_layout_and_splits(tmp_path, csv):
    base = _celeba(tmp_path / "root", csv)
    imgs = sorted((base / "img_align_celeba").glob("*.jpg"))
    for src in (tmp_path / "root", base, base / "img_align_celeba"):
        for split, idx in {"train": range(0, 6), "valid": range(6, 8), "test": range(8, 10)}.items():
            out = tmp_path / f"{split}.npy"
            report = prepare(src, out, PrepareConfig(split=split, workers=1), **QUIET)
            arr = np.load(out)
            assert report.count == len(idx) and report.meta["layout"] == "celeba"
            assert np.array_equal(arr[0], reference(imgs[idx[0]]))
    assert prepare(tmp_path / "root", tmp_path / "all.npy", PrepareConfig(workers=1), **QUIET).count == 10
    # a partial copy: the split's missing files are counted, the rest is prepared
    imgs[1].unlink()
    logs: list[str] = []
    report = prepare(base, tmp_path / "t.npy", PrepareConfig(split="train", workers=1),
                     progress=False, log=logs.append)
    assert report.count == 5 and report.meta["missing_count"] == 1
    assert report.meta["missing_first"] == ["000002.jpg"] and "000002.jpg" in logs[0]


def test_split_needs_the_partition_file(tmp_path):
    faces(tmp_path / "plain", 2)
    with pytest.raises(FaceganError, match="needs the CelebA layout"):
        prepare(tmp_path / "plain", tmp_path / "c.npy", PrepareConfig(split="train"), **QUIET)
    base = _celeba(tmp_path / "root")
    (base / "list_eval_partition.txt").unlink()
    with pytest.raises(FaceganError, match="list_eval_partition.txt"):
        prepare(base, tmp_path / "c.npy", PrepareConfig(split="valid"), **QUIET)


def test_celeba_zip_layout(tmp_path):
    base = _celeba(tmp_path / "root")
    with zipfile.ZipFile(base / "img_align_celeba.zip", "w") as zf:
        for f in sorted((base / "img_align_celeba").glob("*.jpg")):
            zf.write(f, f"img_align_celeba/{f.name}")
    for f in (base / "img_align_celeba").glob("*.jpg"):
        f.unlink()
    (base / "img_align_celeba").rmdir()
    report = prepare(tmp_path / "root", tmp_path / "t.npy", PrepareConfig(split="test", workers=1), **QUIET)
    assert report.count == 2 and report.meta["images"].endswith("img_align_celeba.zip")


# --- --download ---------------------------------------------------------------------------------


def test_download_failure_explains_what_to_do(tmp_path, monkeypatch, capsys):
    class QuotaExceeded:
        def __init__(self, root, split, target_type, download):
            assert download and split == "all"
            raise RuntimeError("Too many users have viewed or downloaded this file recently.")

    monkeypatch.setattr(celeba, "_torchvision_celeba", lambda: QuotaExceeded)
    root = tmp_path / "celeba-root"
    rc = main(["prepare", str(root), "-o", str(tmp_path / "c.npy"), "--download", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.count("facegan: error:") == 1 and "Too many users" in err
    for needed in ("img_align_celeba.zip", "list_eval_partition.txt", str(root / "celeba"),
                   f"facegan prepare {root}"):
        assert needed in err
    assert not (tmp_path / "c.npy").exists()


def test_download_without_gdown_says_to_install_it(tmp_path, monkeypatch):
    class NoGdown:
        def __init__(self, **kw):
            raise RuntimeError("To download files from GDrive, 'gdown' is required.")

    monkeypatch.setattr(celeba, "_torchvision_celeba", lambda: NoGdown)
    with pytest.raises(FaceganError, match="pip install gdown"):
        celeba.download_celeba(tmp_path / "r")


def test_download_success_then_prepare(tmp_path, monkeypatch, capsys):
    class FakeCelebA:  # lays the files out as torchvision does
        def __init__(self, root, split, target_type, download):
            _celeba(Path(root))

    monkeypatch.setattr(celeba, "_torchvision_celeba", lambda: FakeCelebA)
    out = tmp_path / "v.npy"
    rc = main(["prepare", str(tmp_path / "r"), "-o", str(out), "--download", "--split", "valid",
               "--quiet", "--workers", "1"])
    assert rc == 0 and np.load(out).shape == (2, 64, 64, 3)
    assert "wrote" in capsys.readouterr().out


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_prepare_reports_counts(tmp_path, capsys):
    _bad_folder(tmp_path / "src")
    out = tmp_path / "c.npy"
    assert main(["prepare", str(tmp_path / "src"), "-o", str(out), "--quiet", "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}: 7 images of 64x64" in text
    assert "skipped 5 files" in text and "half.jpg" in text and "upsampled 1" in text


def test_cli_errors_are_messages(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "missing"), "-o", str(tmp_path / "c.npy")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path), "-o", str(tmp_path / "c.npy"), "--chunk", "0"]) == 2
    assert "--chunk" in capsys.readouterr().err


@pytest.mark.realdata
def test_real_photos_through_prepare(tmp_path):
    if not CELEBA.is_dir():
        pytest.skip(f"real photos not present at {CELEBA}")
    src = tmp_path / "subset"
    src.mkdir()
    picked = sorted(CELEBA.glob("*.jpg"))[::40]  # 250 photos, symlinked (nothing copied)
    for f in picked:
        (src / f.name).symlink_to(f)
    out = tmp_path / "real.npy"
    assert prepare(src, out, PrepareConfig(workers=2, chunk=64), **QUIET).count == len(picked)
    arr = np.load(out)
    for i in range(0, len(picked), 25):
        assert np.array_equal(arr[i], reference(picked[i])), picked[i].name
