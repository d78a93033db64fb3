"""What grading a class costs on this machine: seconds per 1,000-image archive, and a class of 500.

    python bench/grade_speed.py                      # 4 archives of 1,000 images, 1 CPU thread
    python bench/grade_speed.py --threads 2          # the same on 2 threads
    python bench/grade_speed.py --device cuda        # on a GPU
    python bench/grade_speed.py --archives 2 --count 20   # a dry run (minutes → seconds)

Builds ``--archives`` submissions of ``--count`` distinct 64x64 PNG images each (smooth random
colour blobs with a little grain: PNG sizes like generated faces, decoded and checked exactly as
real ones), plus one archive holding the first one's images re-packed under other names and
another PNG compression (different bytes, same image set). Each is graded by the library call
``facegan grade`` makes (:meth:`facegan.grade.Grader.grade_one`: every safety check, the copy
check with ``--train-images``, the Inception pass, the sample grid), timed one by one, after the
network was loaded (timed separately). The reference is ``../shared/data/celeba-10k-stats.npz``
when present, else one made here from 200 other synthetic images with the same network.

Printed: load time; seconds per archive (each, median); the re-packed duplicate's time (no
Inception pass: the image set was scored already); and what 500 distinct archives cost at the
median, on one process and split in 10 parts (``--shard K/10``). The numbers belong in the
README's "What a class costs" paragraph, measured on a quiet machine.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import SHARED  # bench/ is on sys.path when run as a script


def blobs(seed: int, n: int, size: int = 64) -> np.ndarray:
    """``n`` distinct uint8 images: 8x8 colour blobs upsampled, plus grain."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 230, (n, 8, 8, 3)).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.BICUBIC)) for c in coarse])
    return np.clip(big.astype(np.int16) + rng.integers(0, 24, big.shape), 0, 255).astype(np.uint8)


def write_archive(path: Path, imgs: np.ndarray, folder: str, compress_level: int = 6) -> Path:
    """``path`` as a submission: ``folder/0000.png`` ... in a .tar.gz."""
    from PIL import Image

    with tarfile.open(path, "w:gz") as tf:
        for i, im in enumerate(imgs):
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="PNG", compress_level=compress_level)
            info = tarfile.TarInfo(f"{folder}/{i:04d}.png")
            info.size = buf.tell()
            buf.seek(0)
            tf.addfile(info, buf)
    return path


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archives", type=int, default=4, help="distinct archives to time (default: 4)")
    parser.add_argument("--count", type=int, default=1000, help="images per archive (default: 1000, the brief's)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for scoring (default: 1, one core)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--ref", default=None, help="reference .npz (default: ../shared/data/celeba-10k-stats.npz, "
                                                    "else one made here)")
    parser.add_argument("--train-images", default=None, help="also run the copy check against this uint8 .npy")
    parser.add_argument("--class-size", type=int, default=500, help="students in the class estimate (default: 500)")
    args = parser.parse_args()

    from facegan.devices import pick_device
    from facegan.fid.options import ScorerOptions
    from facegan.grade import Grader, classify
    from facegan.runtime import configure_torch

    device = pick_device(args.device)
    configure_torch(device, args.threads, scoring=True)
    t = time.perf_counter()
    scorer = ScorerOptions(device=str(device)).scorer(progress=False)
    load = time.perf_counter() - t

    with tempfile.TemporaryDirectory(prefix="grade_speed-") as tmp:
        tmp = Path(tmp)
        ref = Path(args.ref) if args.ref else SHARED / "celeba-10k-stats.npz"
        if not ref.is_file():
            ref = tmp / "ref.npz"
            scorer.statistics(blobs(999, 200), source="synthetic").save(ref)
            ref_words = "a reference of 200 synthetic images (celeba-10k-stats.npz not found)"
        else:
            ref_words = str(ref)
        subs = tmp / "subs"
        subs.mkdir()
        paths = [write_archive(subs / f"2025{i:04d}.tar.gz", blobs(i, args.count), f"2025{i:04d}")
                 for i in range(args.archives)]
        dup = write_archive(subs / "20259999.tar.gz", blobs(0, args.count)[::-1], "other", compress_level=1)
        grader = Grader(ref, tmp / "results", lambda: scorer, count=args.count)
        if args.train_images:
            from facegan.copycheck import CopyIndex

            grader.copy_index = CopyIndex.from_file(args.train_images)
        grader.scorer  # loaded above; the weights checked against the reference here

        print(f"grading {args.archives} archives of {args.count} images on {device} "
              f"({args.threads} thread(s)) against {ref_words}"
              + (f", copy check against {args.train_images}" if args.train_images else "") + ":")
        print(f"  Inception loaded in {load:.1f} s (once per run)")
        times = []
        for p in paths:
            t = time.perf_counter()
            r = grader.grade_one(classify(p))
            times.append(time.perf_counter() - t)
            if r.status != "scored":
                sys.exit(f"{p.name}: {r.status}: {r.problems}")
            print(f"  {p.name}: {times[-1]:6.1f} s  (FID {r.fid:.2f})")
        t = time.perf_counter()
        r = grader.grade_one(classify(dup))
        dup_s = time.perf_counter() - t
        assert r.status == "scored" and grader.sets_scored == args.archives, "the duplicate was scored again"
        print(f"  {dup.name} (the first one's images re-packed): {dup_s:.1f} s (checked, not scored again)")

    per = statistics.median(times)
    n = args.class_size
    print(f"median {per:.1f} s per archive ({args.count} images: {per / args.count * 1000:.0f} ms/image)")
    print(f"a class of {n} distinct archives: {hours(n * per + load)} in one process; "
          f"{hours(n / 10 * per + load)} per part in 10 parts (--shard K/10, one such process each)")


if __name__ == "__main__":
    main()
