"""Score what ``bench/gpu_quality.py`` brought back: FID@1k of each .npy, the floor, the copy check.

    python bench/score_npy.py OUT [--ref ../shared/data/celeba-10k-stats.npz]

``final.npy`` is the handed-in set (seeds 0…999); ``curve-NNNNNNNNNN.npy`` are the EMA's
snapshots on the selection seeds (1,000,000 and up) after that many images.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _common import PHOTOS, add_data_arguments, build_cache
from _scoring import FLOOR_1K, REF, Scorer, copy_check


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the folder gpu_quality.py wrote")
    ap.add_argument("--ref", type=Path, default=REF)
    add_data_arguments(ap, photos=False)
    args = ap.parse_args()
    from facegan.images import load_uint8_array

    scorer = Scorer(args.ref)
    summary = json.loads((args.out / "summary.json").read_text()) if (args.out / "summary.json").is_file() else {}
    print(f"{summary.get('device', '?')}: {summary.get('kimg', 0):.0f} kimg in {summary.get('minutes_trained', 0):.1f} min, "
          f"{summary.get('img_per_s', 0):.0f} img/s, {summary.get('gflop_per_img', 0):.2f} GFLOP/img, "
          f"share of bf16 peak {summary.get('share_of_bf16_peak')}")
    print("| set | images seen | FID@1k | floor |\n|---|---:|---:|---:|")
    for path in sorted(args.out.glob("curve-*.npy")):
        print(f"| {path.name} (seeds 1M+) | {int(path.stem.split('-')[1]) / 1000:.0f} kimg | "
              f"{scorer.fid(np.load(path)):.2f} | {FLOOR_1K} |", flush=True)
    final = np.load(args.out / "final.npy")
    print(f"| final.npy (seeds 0-999, handed in) | {summary.get('kimg', 0):.0f} kimg | {scorer.fid(final):.2f} | {FLOOR_1K} |")
    c = copy_check(final, np.asarray(load_uint8_array(build_cache(PHOTOS, args.cache))))
    print(f"copy check (RMS pixel distance to the nearest training photo, median/p1/min): samples "
          f"{c['fake_median']:.1f}/{c['fake_p1']:.1f}/{c['fake_min']:.1f}, real photos to another "
          f"{c['real_median']:.1f}/{c['real_p1']:.1f}/{c['real_min']:.1f}")


if __name__ == "__main__":
    main()
