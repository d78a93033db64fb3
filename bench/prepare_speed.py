"""``facegan prepare`` against the plain torchvision loop over the same photos, in one run.

    python bench/prepare_speed.py                     # ../shared/data/celeba-10k (89x109 JPEGs)
    python bench/prepare_speed.py --full-size         # also 178x218 stand-ins (CelebA's real size)

Compared, on the same files, with the same number of worker processes:

* ``prepare``: ``facegan.data.prepare`` (decode -> Resize -> CenterCrop once, into a uint8 .npy);
* ``ImageFolder``: ``torchvision.datasets.ImageFolder`` + ``Compose([Resize(64), CenterCrop(64),
  ToTensor(), Normalize(0.5, 0.5)])`` + ``DataLoader(batch_size=128, num_workers=W)``: one epoch of
  the usual DCGAN script (ImageFolder needs a class folder: a temporary folder of symlinks);
* ``cache epoch``: one training epoch read from the prepared cache (mmap -> x/127.5 - 1 batches).

The ImageFolder batches are checked against the cache (converted with ``x / 127.5 - 1``) as they
come, so the comparison is of equal work with equal results. Files are read once beforehand so
both runs find them in the page cache. ``--full-size`` makes 178x218 stand-ins (each photo
upscaled 2x, JPEG quality 90) in a temporary folder: CelebA's own photos are 178x218, and
decoding cost grows with pixels, so the extrapolation to 202,599 photos is taken from those.
Nothing derived from the photos is written outside the temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CELEBA_FULL = 202_599
DEFAULT_SRC = Path(__file__).resolve().parents[1].parent / "shared/data/celeba-10k"


def warm(files: list[Path]) -> None:
    for f in files:
        f.read_bytes()


def run_prepare(src: Path, out: Path, workers: int) -> float:
    from facegan.data import PrepareConfig, prepare

    t = time.perf_counter()
    prepare(src, out, PrepareConfig(workers=workers, resume=False), progress=False, log=lambda m: None)
    return time.perf_counter() - t


def run_imagefolder(files: list[Path], tmp: Path, workers: int, batch: int, cache: np.ndarray) -> tuple[float, float]:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    root = tmp / "imagefolder"
    (root / "faces").mkdir(parents=True, exist_ok=True)
    for f in files:
        link = root / "faces" / f.name
        if not link.exists():
            link.symlink_to(f.resolve())
    tf = transforms.Compose([transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor(),
                             transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    t = time.perf_counter()
    loader = DataLoader(datasets.ImageFolder(str(root), transform=tf), batch_size=batch,
                        shuffle=False, num_workers=workers)
    worst, pos = 0.0, 0
    for x, _ in loader:
        ours = torch.from_numpy(np.array(cache[pos:pos + len(x)])).permute(0, 3, 1, 2).float() / 127.5 - 1
        worst = max(worst, (ours - x).abs().max().item())
        pos += len(x)
    seconds = time.perf_counter() - t
    assert pos == len(cache), (pos, len(cache))
    return seconds, worst


def run_cache_epoch(cache_path: Path, batch: int) -> float:
    from facegan.data import to_model_range
    from facegan.images import load_uint8_array

    t = time.perf_counter()
    arr = load_uint8_array(cache_path)
    total = 0.0
    for i in range(0, len(arr), batch):
        total += to_model_range(np.asarray(arr[i:i + batch])).sum().item()
    return time.perf_counter() - t


def full_size_standins(files: list[Path], dest: Path) -> list[Path]:
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        p = dest / f.name
        with Image.open(f) as im:
            im.convert("RGB").resize((im.width * 2, im.height * 2), Image.BICUBIC).save(p, quality=90)
        out.append(p)
    return out


def bench(label: str, src: Path, files: list[Path], tmp: Path, workers: int, batch: int, repeat: int) -> None:
    warm(files)
    cache_path = tmp / f"{label}.npy"
    t_prep = min(run_prepare(src, cache_path, workers) for _ in range(repeat))
    cache = np.load(cache_path, mmap_mode="r")
    runs = [run_imagefolder(files, tmp / label, workers, batch, cache) for _ in range(repeat)]
    t_tv, worst = min(r[0] for r in runs), max(r[1] for r in runs)
    t_epoch = min(run_cache_epoch(cache_path, batch) for _ in range(repeat))
    n = len(files)
    print(f"\n{label}: {n} photos {_size(files[0])}, {workers} worker processes, batch {batch}, "
          f"best of {repeat}")
    print(f"  {'method':<34}{'seconds':>9}{'images/s':>10}{'vs ImageFolder':>16}{'202,599 photos':>16}")
    for name, t in [("facegan prepare (once)", t_prep),
                    ("ImageFolder+transforms epoch", t_tv),
                    ("epoch from the prepared cache", t_epoch)]:
        print(f"  {name:<34}{t:>9.2f}{n / t:>10.0f}{t_tv / t:>15.1f}x{_hms(CELEBA_FULL * t / n):>16}")
    print(f"  same pixels: max |ImageFolder - (cache/127.5 - 1)| = {worst:.2e}")


def _size(f: Path) -> str:
    from PIL import Image

    with Image.open(f) as im:
        return f"{im.width}x{im.height}"


def _hms(s: float) -> str:
    return f"{int(s // 60)} min {s % 60:04.1f} s" if s >= 60 else f"{s:.1f} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder of photos")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each, best kept")
    ap.add_argument("--limit", type=int, default=0, help="first N photos only (0: all)")
    ap.add_argument("--full-size", action="store_true", help="also 178x218 stand-ins")
    args = ap.parse_args()
    if not args.src.is_dir():
        print(f"no photos at {args.src}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # the main process only collates/compares; workers do the decoding
    files = sorted(args.src.glob("*.jpg"))[: args.limit or None]
    with tempfile.TemporaryDirectory(prefix="prepare-bench-") as tmp:
        tmp = Path(tmp)
        src = args.src
        if args.limit:
            src = tmp / "subset"
            src.mkdir()
            for f in files:
                (src / f.name).symlink_to(f.resolve())
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, source {args.src}")
        bench("as-shared", src, files, tmp, args.workers, args.batch, args.repeat)
        if args.full_size:
            big = full_size_standins(files, tmp / "full")
            bench("full-size", tmp / "full", big, tmp, args.workers, args.batch, args.repeat)
            shutil.rmtree(tmp / "full")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
