"""Copy check quality: recall on altered copies of training photos, false alarms on photos that are
not in the training set, and the time it costs — ``facegan.copycheck.CopyIndex`` as ``grade
--train-images`` uses it.

The 10,000 shared photos (``../shared/data/celeba-10k``, prepared to 64x64) are split into a
"training" half (the first 5,000) and a held-out half. Recall: ``--copies`` training photos, picked
at random, altered as a student might (the alterations the check is built for, then harder ones
it is not built for, to show where it stops), and checked against the training half. False
alarms: the 5,000 held-out photos — real faces that are *not* copies, the hardest negatives
there are (same data set, same alignment, some the same people) — and, when given, generated
samples (``--samples``: a folder, archive or .npy of a model's images). Timing: the index and
one check of 1,000 images at this size and, with ``--scale``, against a training set of that
many photos (the 10,000 and copies of them moved by 4 to 12 pixels: for timing only).

    python bench/copycheck_quality.py [--copies 1000] [--scale 200000] [--samples samples/]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import PHOTOS, build_cache  # bench/ is on sys.path when run as a script

from facegan.devices import cpu_name  # the one CPU-name rule (/proc/cpuinfo)


def jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    out = []
    for im in x:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, "JPEG", quality=quality)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return np.stack(out)


def shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    m = max(abs(dy), abs(dx))
    pad = np.pad(x, ((0, 0), (m, m), (m, m), (0, 0)), mode="edge")
    return pad[:, m - dy : m - dy + x.shape[1], m - dx : m - dx + x.shape[2]]


def pil_each(x: np.ndarray, f) -> np.ndarray:
    return np.stack([np.asarray(f(Image.fromarray(im))) for im in x])


def zoom(x: np.ndarray, factor: float) -> np.ndarray:
    s = x.shape[1]
    big = round(s * factor)
    off = (big - s) // 2
    return pil_each(x, lambda im: im.resize((big, big), Image.BICUBIC).crop((off, off, off + s, off + s)))


def noise(x: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (x + rng.normal(0, sigma, x.shape)).clip(0, 255).astype(np.uint8)


#: (name, what it does, built for it?)
ALTERATIONS = [
    ("exact", lambda x: x, True),
    ("mirrored", lambda x: x[:, :, ::-1], True),
    ("JPEG q75", lambda x: jpeg(x, 75), True),
    ("shifted 1 px", lambda x: shift(x, 0, 1), True),
    ("shifted 1 px diagonally", lambda x: shift(x, 1, 1), True),
    ("mirrored + shifted 1 px + JPEG q75", lambda x: jpeg(shift(x[:, :, ::-1], -1, 1), 75), True),
    ("shifted 2 px diagonally", lambda x: shift(x, 2, 2), False),
    ("shifted 3 px", lambda x: shift(x, 0, 3), False),
    ("JPEG q30", lambda x: jpeg(x, 30), False),
    ("brightness +30", lambda x: (x.astype(np.int16) + 30).clip(0, 255).astype(np.uint8), False),
    ("Gaussian noise sigma 8", lambda x: noise(x, 8), False),
    ("zoomed 1.1x (crop)", lambda x: zoom(x, 1.1), False),
    ("rotated 3 degrees", lambda x: pil_each(x, lambda im: im.rotate(3, Image.BICUBIC)), False),
]


def timed(f):
    t = time.perf_counter()
    result = f()
    return result, time.perf_counter() - t


def load_samples(src: str) -> np.ndarray:
    if src.endswith(".npy"):
        from facegan.images import load_uint8_array

        return np.asarray(load_uint8_array(src))
    from facegan.images import decode_image, open_source

    source = open_source(src)
    return np.stack([np.asarray(decode_image(data, name).convert("RGB")) for name, data in source.iter_bytes()])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, default=PHOTOS)
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "facegan-bench" / "celeba10k-64.npy")
    p.add_argument("--copies", type=int, default=1000, help="training photos altered per row")
    p.add_argument("--scale", type=int, default=200_000, help="also time a training set this large (0: no)")
    p.add_argument("--samples", default=None, help="generated samples (folder, archive or .npy) as a second false-alarm set")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()

    import torch

    from facegan.copycheck import CopyIndex

    if args.threads:
        torch.set_num_threads(args.threads)
    photos = np.load(build_cache(args.photos, args.cache), mmap_mode="r")
    half = len(photos) // 2
    train, held = np.asarray(photos[:half]), np.asarray(photos[half:])
    index, build_s = timed(lambda: CopyIndex.from_array(train))
    picked = np.random.default_rng(0).choice(half, min(args.copies, half), replace=False)
    base = train[picked]
    index.find_copies(base[:8])  # warm-up (imports, allocator)

    print(f"facegan copy check — {cpu_name()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, numpy {np.__version__}")
    print(f"training half: {len(train):,} photos; held out: {len(held):,}; index built in {build_s:.2f} s; "
          f"threshold {index.threshold}, {index.candidates} candidates, shifts up to ±{index.max_shift} px\n")
    print(f"{'altered copies of training photos':<40} {'found':>12} {'recall':>8} {'right photo':>12} {'s/1000':>8}")
    for name, alter, built_for in ALTERATIONS:
        queries = alter(base)
        found, secs = timed(lambda: index.find_copies(queries))
        right = sum(picked[c.image] == c.train for c in found)
        tag = "" if built_for else "  (not built for)"
        print(f"{name + tag:<40} {len(found):>5}/{len(queries):<6} {len(found) / len(queries):>8.1%} "
              f"{right:>12} {secs * 1000 / len(queries):>8.2f}")

    print(f"\n{'photos that are not copies':<40} {'flagged':>12} {'rate':>8} {'':>12} {'s/1000':>8}")
    negatives = [("held-out real photos (not in training)", held)]
    if args.samples:
        negatives.append((f"generated samples ({args.samples})", load_samples(args.samples)))
    else:
        print("(no generated samples given (--samples): no trained model was at hand; the held-out real photos"
              " are the false-alarm set, and the harder one)")
    for name, imgs in negatives:
        found, secs = timed(lambda: index.find_copies(imgs))
        print(f"{name:<40} {len(found):>5}/{len(imgs):<6} {len(found) / len(imgs):>8.2%} {'':>12} "
              f"{secs * 1000 / len(imgs):>8.2f}")
        for c in found[:10]:
            print(f"    flagged: held-out #{c.image + half} ~ training #{c.train}, similarity {c.similarity:.4f}, "
                  f"mirrored {c.flipped}, shift {c.shift}")

    if args.scale:
        # the 10,000 photos again, each repeat moved by another 4-8 px (wrapping round): distinct
        # to the verification, lookalikes to the thumbnails — the candidates a large set brings
        moves = [(4 * i, 4 * j) for i in range(-3, 4) for j in range(-3, 4) if (i, j) != (0, 0)]
        reps = -(-args.scale // len(photos))
        big = np.concatenate([np.asarray(photos)] + [np.roll(photos, m, axis=(1, 2)) for m in moves[: reps - 1]])
        big = big[: args.scale]
        big_index, big_s = timed(lambda: CopyIndex.from_array(big))
        big_index.find_copies(held[:8])
        _, honest_s = timed(lambda: big_index.find_copies(held[:1000]))
        _, copies_s = timed(lambda: big_index.find_copies(jpeg(base[:1000][:, :, ::-1], 75)))
        print(f"\nat {len(big):,} training photos (the 10,000 and moved copies of them; timing only): index {big_s:.1f} s once per run; "
              f"1,000 honest images {honest_s:.2f} s, 1,000 copies {copies_s:.2f} s per archive")


if __name__ == "__main__":
    main()
