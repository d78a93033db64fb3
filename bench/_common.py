"""What several benchmark scripts share: where the shared photos are, and their 64x64 cache."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared/data"
PHOTOS = SHARED / "celeba-10k"


def build_cache(photos: Path, cache: Path) -> Path:
    """The 64×64 uint8 cache of ``photos`` (made once with ``facegan prepare``'s library call)."""
    if cache.is_file():
        return cache
    from facegan.data import prepare

    cache.parent.mkdir(parents=True, exist_ok=True)
    prepare(photos, cache, progress=False, log=lambda *a, **k: None)
    return cache
