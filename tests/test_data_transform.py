"""The brief's transform: byte-identical to torchvision's Compose, and every input mode to RGB."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from facegan.data import brief_transform, prepare_image, to_model_range, to_rgb
from facegan.errors import BadImageError

CELEBA = Path(__file__).resolve().parents[1].parent / "shared/data/celeba-10k"


def photo(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A synthetic RGB 'photo': smooth gradients plus noise, so any resampling slip shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([255 * xx / max(w - 1, 1), 255 * yy / max(h - 1, 1),
                     127 + 100 * np.sin((xx + yy) / 5)], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def reference(data: bytes, size: int = 64) -> np.ndarray:
    """What the brief's pipeline gives: PIL open -> RGB -> Compose([Resize, CenterCrop])."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return np.asarray(transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)])(img))


SHAPES = [(178, 218), (218, 178), (100, 100), (64, 64), (64, 200), (300, 65), (65, 64),
          (89, 109), (40, 30), (7, 3), (1, 1)]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("w,h", SHAPES)
def test_identical_to_torchvision_compose(fmt, w, h):
    data = encode(Image.fromarray(photo(w, h, seed=w * h)), fmt)
    out, notes = prepare_image(data, "x", 64)
    assert out.dtype == np.uint8 and out.shape == (64, 64, 3)
    assert np.array_equal(out, reference(data))
    assert notes["original"] == (w, h) and notes["converted"] is None


@pytest.mark.parametrize("size", [32, 48, 128])
def test_identical_at_other_sizes(size):
    for w, h in [(178, 218), (150, 90), (size, size)]:
        data = encode(Image.fromarray(photo(w, h)), "JPEG")
        assert np.array_equal(prepare_image(data, "x", size)[0], reference(data, size))


@pytest.mark.realdata
def test_identical_on_real_celeba_photos():
    if not CELEBA.is_dir():
        pytest.skip(f"real photos not present at {CELEBA}")
    files = sorted(CELEBA.glob("*.jpg"))[::50]  # 200 photos spread over the set
    assert len(files) >= 100
    for f in files:
        data = f.read_bytes()
        assert np.array_equal(prepare_image(data, f.name)[0], reference(data)), f.name


def test_model_range_matches_totensor_normalize():
    # every uint8 value, in a batch of two images
    x = np.arange(2 * 16 * 24 * 3, dtype=np.int64).reshape(2, 16, 24, 3) % 256
    x = x.astype(np.uint8)
    ours = to_model_range(torch.from_numpy(x))
    tv = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    theirs = torch.stack([tv(Image.fromarray(im)) for im in x])
    assert ours.dtype == torch.float32 and ours.shape == (2, 3, 16, 24)
    # Same maths ((x/255 - .5)/.5 == x/127.5 - 1); float32 rounding differs by at most ~1 ulp.
    assert (ours - theirs).abs().max().item() <= 2.5e-7
    assert ours.min().item() == -1.0 and ours.max().item() == 1.0
    assert torch.equal(to_model_range(x), ours)  # numpy in, same result


# --- input modes --------------------------------------------------------------------------


def test_grayscale_and_palette_become_rgb_like_pil_convert():
    rgb = Image.fromarray(photo(90, 110))
    for img in (rgb.convert("L"), rgb.convert("P"), rgb.convert("1")):
        data = encode(img, "PNG")
        out, notes = prepare_image(data, "g.png")
        assert notes["converted"] == img.mode
        assert np.array_equal(out, reference(data))
    gray = prepare_image(encode(rgb.convert("L"), "JPEG"), "g.jpg")[0]
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.fromarray(photo(80, 100)).convert("CMYK")
    data = encode(cmyk, "JPEG")
    out, notes = prepare_image(data, "c.jpg")
    assert notes["converted"] == "CMYK"
    assert np.array_equal(out, reference(data))


def test_16bit_grey_is_scaled_not_clipped():
    wide = np.full((70, 70), 30000, np.uint16)
    wide[:, 35:] = 65535
    img = Image.fromarray(wide)
    assert img.mode == "I;16"
    data = encode(img, "PNG")
    out, notes = prepare_image(data, "deep.png")
    assert notes["converted"].startswith("I")
    assert out[32, 5].tolist() == [117, 117, 117]  # round(30000 / 257); clipping would give 255
    assert out[32, 60].tolist() == [255, 255, 255]


def _png_rgb16(arr: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16bit_rgb_png_keeps_its_range():
    arr = np.zeros((66, 66, 3), np.uint16)
    arr[..., 0], arr[..., 1], arr[..., 2] = 30000, 65535, 1000
    out, _ = prepare_image(_png_rgb16(arr), "deep-rgb.png")
    # 8-bit reading of 30000/65535/1000: about 117/255/4 (scaled), never clipped to 255
    assert np.abs(out[10, 10].astype(int) - [117, 255, 4]).max() <= 1


def test_alpha_is_composited_on_white():
    arr = np.zeros((80, 80, 4), np.uint8)  # black, fully transparent...
    arr[:, 40:] = [200, 10, 10, 255]  # ...except an opaque red right half
    out, notes = prepare_image(encode(Image.fromarray(arr, "RGBA"), "PNG"), "a.png")
    assert notes["converted"] == "RGBA"
    assert out[32, 2].tolist() == [255, 255, 255]
    assert out[32, 60].tolist() == [200, 10, 10]
    la = Image.fromarray(np.dstack([np.full((70, 70), 50, np.uint8), np.zeros((70, 70), np.uint8)]), "LA")
    assert prepare_image(encode(la, "PNG"), "la.png")[0].min() == 255


def test_opaque_rgba_equals_plain_convert():
    rgba = Image.fromarray(photo(90, 70)).convert("RGBA")
    data = encode(rgba, "PNG")
    assert np.array_equal(prepare_image(data, "o.png")[0], reference(data))


def test_exif_orientation_is_applied():
    from PIL import ImageOps

    img = Image.fromarray(photo(120, 70))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(img, "JPEG", exif=exif.tobytes())
    out, notes = prepare_image(data, "phone.jpg")
    assert notes["rotated"] and notes["original"] == (70, 120)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    assert np.array_equal(out, brief_transform(upright))
    assert not np.array_equal(out, reference(data))  # the un-rotated reading differs


def test_float_images_are_refused_with_a_reason():
    img = Image.fromarray(np.full((70, 70), 0.5, np.float32))
    with pytest.raises(BadImageError, match="floating-point"):
        to_rgb(img, "f.tif")


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"this is not a picture at all", "not an image"),
])
def test_unreadable_bytes_raise_bad_image(data, reason):
    with pytest.raises(BadImageError, match=reason):
        prepare_image(data, "bad.jpg")


def test_truncated_jpeg_raises_bad_image():
    data = encode(Image.fromarray(photo(178, 218)), "JPEG")
    with pytest.raises(BadImageError, match="truncated|corrupt"):
        prepare_image(data[: len(data) // 2], "half.jpg")
