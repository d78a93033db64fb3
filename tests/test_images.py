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


# ----------------------------------------------------------------------------- hostile folders


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB with almost no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.timeout(30)
def test_fifos_devices_and_broken_links_are_skipped_with_the_reason(tmp_path):
    import os

    d = tmp_path / "imgs"
    d.mkdir()
    (d / "good.png").write_bytes(png_bytes())
    os.mkfifo(d / "x.png")  # opening it for reading would wait for a writer forever
    os.symlink("/dev/zero", d / "zero.png")  # reading it would never end
    os.symlink(d / "loop2.png", d / "loop1.png")
    os.symlink(d / "loop1.png", d / "loop2.png")
    os.symlink(d / "gone.png", d / "dangling.png")
    os.symlink(d / "good.png", d / "alias.png")  # a link to a regular file is followed
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", d / "linked_dir")
    src = open_source(d)
    assert src.names == ["alias.png", "good.png"]
    reasons = dict(src.skipped)
    assert "FIFO" in reasons["x.png"]
    assert "character device" in reasons["zero.png"]
    assert "link loop" in reasons["loop1.png"] and "link loop" in reasons["loop2.png"]
    assert "dangling link" in reasons["dangling.png"]
    assert "not followed" in reasons["linked_dir"]
    assert src.read_bytes("alias.png") == png_bytes()


@pytest.mark.timeout(30)
def test_a_file_swapped_or_deleted_after_listing_is_a_bad_image_not_a_hang(tmp_path):
    import os

    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(png_bytes())
    src = open_source(tmp_path)
    (tmp_path / "a.png").unlink()
    os.mkfifo(tmp_path / "a.png")
    (tmp_path / "b.png").unlink()
    (tmp_path / "c.png").unlink()
    os.symlink("/dev/zero", tmp_path / "c.png")
    with pytest.raises(BadImageError, match="a.png: a FIFO"):
        src.read_bytes("a.png")
    with pytest.raises(BadImageError, match="b.png: deleted"):
        src.read_bytes("b.png")
    with pytest.raises(BadImageError, match="c.png: a character device"):
        src.read_bytes("c.png")


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    from facegan.images import MAX_FILE_BYTES, read_file

    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk, and must cost no memory
    src = open_source(tmp_path)
    assert src.names == ["big.png"]
    with pytest.raises(BadImageError, match="big.png: 67,108,865 bytes, over the 67,108,864-byte limit"):
        src.read_bytes("big.png")
    (tmp_path / "small.png").write_bytes(b"x" * 101)
    with pytest.raises(BadImageError, match="over the 100-byte limit"):
        read_file(tmp_path / "small.png", limit=100)
    assert read_file(tmp_path / "small.png", limit=101) == b"x" * 101


@pytest.mark.parametrize("side", [9000, 40000])  # under / over Pillow's own bomb threshold
def test_a_huge_canvas_is_refused_before_decoding(side):
    from facegan.images import MAX_IMAGE_PIXELS

    assert side * side > MAX_IMAGE_PIXELS
    data = _png_header(side, side)
    assert len(data) < 200
    with pytest.raises(BadImageError, match=r"bomb.png: its header claims .* over the 67,108,864-pixel limit"):
        decode_image(data, "bomb.png")
    with pytest.raises(BadImageError, match="over the 4,096-pixel limit"):
        decode_image(png_bytes(size=(65, 64)), "wide.png", max_pixels=64 * 64)
    assert decode_image(png_bytes(size=(64, 64)), "ok.png", max_pixels=64 * 64).size == (64, 64)


@pytest.mark.timeout(30)
def test_uint8_array_must_be_a_regular_file_of_bounded_images(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.npy")
    with pytest.raises(FaceganError, match=r"pipe\.npy: a FIFO"):
        load_uint8_array(tmp_path / "pipe.npy")
    np.save(tmp_path / "wide.npy", np.zeros((2, 8, 9, 3), np.uint8))
    with pytest.raises(FaceganError, match=r"wide\.npy: images of 9x8, over the 64-pixel limit"):
        load_uint8_array(tmp_path / "wide.npy", max_pixels=64)
