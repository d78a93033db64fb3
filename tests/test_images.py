"""Image sources: folders, zips and tars listed alike; bad files named, never extracted."""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from facegan.errors import BadImageError, FaceganError
from facegan.images import decode_image, load_uint8_array, open_source, save_png


def png_bytes(color=(10, 20, 30), size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    (d / "b.png").write_bytes(png_bytes())
    (d / "sub" / "a.png").write_bytes(png_bytes((1, 2, 3)))
    (d / "notes.txt").write_text("not an image")
    (d / ".DS_Store").write_bytes(b"\0")
    return d


def test_folder_is_recursive_sorted_and_counts_non_images(folder):
    src = open_source(folder)
    assert src.names == ["b.png", "sub/a.png"]
    assert src.skipped == [("notes.txt", "not an image file")]
    assert np.asarray(decode_image(src.read_bytes("sub/a.png"), "a"))[0, 0].tolist() == [1, 2, 3]


def test_zip_and_tar_list_the_same_images(folder, tmp_path):
    zpath, tpath = tmp_path / "s.zip", tmp_path / "s.tar.gz"
    with zipfile.ZipFile(zpath, "w") as zf, tarfile.open(tpath, "w:gz") as tf:
        for name in ["b.png", "sub/a.png", "notes.txt"]:
            zf.write(folder / name, name)
            tf.add(folder / name, name)
        link = tarfile.TarInfo("evil.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    for path in (zpath, tpath):
        src = open_source(path)
        assert src.names == ["b.png", "sub/a.png"]
        assert src.read_bytes("b.png") == (folder / "b.png").read_bytes()
        # picklable for worker processes: the open handle is dropped and reopened
        clone = pickle.loads(pickle.dumps(src))
        assert clone.read_bytes("sub/a.png") == (folder / "sub/a.png").read_bytes()
    assert ("evil.png", "a link or special file, not an image") in open_source(tpath).skipped


def test_missing_and_wrong_sources_name_the_path(tmp_path):
    with pytest.raises(FaceganError, match="no such file"):
        open_source(tmp_path / "nope")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(FaceganError, match=r"x\.csv: not a folder"):
        open_source(tmp_path / "x.csv")
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    with pytest.raises(FaceganError, match="broken.zip: not a readable zip"):
        open_source(tmp_path / "broken.zip")


@pytest.mark.parametrize(
    "data, reason",
    [(b"", "empty file"), (b"hello world", "not an image"), (png_bytes(size=(64, 64))[:60], "corrupt or truncated")],
)
def test_decode_names_the_bad_image(data, reason):
    with pytest.raises(BadImageError, match=f"bad.png: {reason}"):
        decode_image(data, "bad.png")


def test_uint8_array_shape_is_checked_and_png_roundtrips(tmp_path):
    good = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "good.npy", good)
    assert np.array_equal(load_uint8_array(tmp_path / "good.npy"), good)
    np.save(tmp_path / "bad.npy", good.astype(np.float32))
    with pytest.raises(FaceganError, match=r"bad\.npy: expected a uint8 array"):
        load_uint8_array(tmp_path / "bad.npy")
    save_png(good[0], tmp_path / "one.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one.png")), good[0])
