"""Sample grids: many uint8 images tiled into one picture, optionally captioned.

Used by training (fixed-noise grids), ``grade`` (a grid per student) and anything else that
shows images; it sits below both so that neither imports the other.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np


def grid_image(images: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile uint8 (N, H, W, 3) images into one uint8 (H', W', 3) grid (``nrow`` per row)."""
    import torch
    from torchvision.utils import make_grid

    n = len(images)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    t = torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # (N, 3, H, W)
    grid = make_grid(t, nrow=nrow, padding=pad, pad_value=255)  # uint8 stays uint8
    return grid.permute(1, 2, 0).contiguous().numpy()


def add_caption(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with a white strip above it holding ``text`` (Pillow's default font)."""
    from PIL import Image, ImageDraw

    strip = 14
    canvas = Image.new("RGB", (image.shape[1], image.shape[0] + strip), (255, 255, 255))
    canvas.paste(Image.fromarray(image), (0, strip))
    ImageDraw.Draw(canvas).text((3, 1), text, fill=(0, 0, 0))
    return np.asarray(canvas)


def save_grid(images: np.ndarray, path: str | os.PathLike, nrow: int | None = None, caption: str | None = None) -> Path:
    """Write uint8 (N, H, W, 3) images as one PNG grid (with ``caption`` above it, if given)."""
    from facegan.images import save_png

    path = Path(path)
    grid = grid_image(images, nrow)
    save_png(add_caption(grid, caption) if caption else grid, path)
    return path
