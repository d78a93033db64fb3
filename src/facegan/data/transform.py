"""The brief's preprocessing of one photo: bytes -> a uint8 (S, S, 3) image, and the model's view.

The brief turns each photo into a 64x64 training image with torchvision's ``Resize(64)`` then
``CenterCrop(64)`` (then ``ToTensor()`` and a normalize to [-1, 1]). :func:`brief_transform`
calls those very torchvision ops on the PIL image, so the cache is byte-identical to what the
brief's pipeline sees; :func:`to_model_range` is the float conversion at the model's door.

Input decisions (what a user expects from "a folder of faces"), made by :func:`prepare_image`:

* grayscale, palette, CMYK, YCbCr... -> RGB with Pillow's ``convert``;
* 16-bit images -> 8-bit by scaling (``round(v / 257)``, 65535 -> 255), never by clipping;
* alpha (RGBA, LA, transparent palettes) -> composited on white, as a viewer shows it;
* an EXIF orientation tag is applied first (phone photos stand upright);
* images smaller than the target are upsampled by the same ``Resize`` (the brief's transform
  works on them); whether to keep them is :mod:`facegan.data.cache`'s decision;
* undecodable bytes and modes with no sensible RGB reading raise :class:`BadImageError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facegan.errors import BadImageError
from facegan.images import decode_image

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_16BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


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


def to_model_range(x, dtype=None, channels_last: bool = False):
    """uint8 images (N, H, W, 3) (torch or numpy) -> float (N, 3, H, W) in [-1, 1].

    ``x / 127.5 - 1`` is ``ToTensor()`` (x / 255) then ``Normalize(0.5, 0.5)`` ((v - .5) / .5) in
    one step on a whole batch; the two agree to float32 rounding (the test allows 2.5e-7; on torch
    2.14 CPU they are bit-identical for all 256 values). This is the model's door: the training
    loader and every other float conversion go through it.

    ``dtype`` defaults to float32. ``channels_last=True`` keeps the NHWC storage (the permuted view
    *is* channels_last NCHW), which saves a copy when the convolutions run channels_last.
    """
    import torch

    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = np.array(x)  # a read-only memmap slice: torch warns on wrapping it (uint8 copy, cheap)
    x = torch.as_tensor(x)
    if x.dtype != torch.uint8:  # also keeps the in-place ops below off the caller's tensor
        raise TypeError(f"to_model_range expects uint8 images, got {x.dtype}")
    x = x.permute(0, 3, 1, 2)
    dtype = dtype or torch.float32
    x = x.to(dtype) if channels_last else x.contiguous().to(dtype)
    return x.div_(127.5).sub_(1.0)