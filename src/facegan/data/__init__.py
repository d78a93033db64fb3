"""Photos -> the uint8 (N, S, S, 3) training cache, by the brief's preprocessing.

* :mod:`facegan.data.transform`: one photo -> the brief's ``Resize`` + ``CenterCrop`` image
  (RGB conversion, EXIF orientation) and :func:`to_model_range`, the float view for the model;
* :mod:`facegan.data.celeba`: finding the images: the CelebA layout, its splits, ``--download``;
* :mod:`facegan.data.cache`: :func:`prepare`, the chunked, parallel, atomic, resumable writer of
  the cache and its JSON sidecar.

The public names of all three are re-exported here. To patch a private name, patch it in the
module that looks it up (e.g. ``facegan.data.cache.prepare_image``), not here.
"""

from facegan.data.cache import (
    CACHE_FORMAT,
    PrepareConfig,
    PrepareReport,
    list_hash,
    prepare,
    sidecar_path,
    work_dir,
)
from facegan.data.celeba import (
    CELEBA_SPLITS,
    CelebaLayout,
    download_celeba,
    find_celeba,
    read_partition,
    resolve_source,
)
from facegan.data.transform import (
    brief_transform,
    prepare_image,
    to_model_range,
    to_rgb,
    upright,
)

__all__ = [
    "CACHE_FORMAT",
    "CELEBA_SPLITS",
    "CelebaLayout",
    "PrepareConfig",
    "PrepareReport",
    "brief_transform",
    "download_celeba",
    "find_celeba",
    "list_hash",
    "prepare",
    "prepare_image",
    "read_partition",
    "resolve_source",
    "sidecar_path",
    "to_model_range",
    "to_rgb",
    "upright",
    "work_dir",
]
