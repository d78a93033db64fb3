"""Quality: presets trained for a fixed time on the shared photos, each scored by FID@1k.

For each ``--presets`` entry (one after another, on the same machine, in one script run), trains
``facegan.train.training_loop`` for ``--minutes`` on the 64x64 cache of
``../shared/data/celeba-10k``, then scores:

* FID@1k of the 1,000 images ``facegan sample`` hands in (seeds 0…999, EMA) against
  ``celeba-10k-stats.npz``, beside the real-data floor (1,000 real photos vs the other 9,000: 16.43);
* the curve: FID@1k against images seen, from EMA snapshots taken during training on the
  selection seeds (1,000,000 and up: disjoint from the handed-in ones); snapshot sampling counts
  against the run's minutes, scoring happens after training;
* a copy check: each sample's RMS pixel distance to its nearest training photo, beside the same
  for real photos to their nearest other photo (a copier would sit far below).

Then the winner is trained again with ``--repeat`` other seeds, for the run-to-run spread.

    python bench/quality.py --presets dcgan,cpu,gpu --minutes 20 [--repeat 1] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import PHOTOS, build_cache  # bench/ is on sys.path when run as a script
from _scoring import FLOOR_1K, REF, Scorer, copy_check


def train_and_score(preset: str, seed: int, minutes: float, cache: Path, out: Path, scorer: Scorer,
                    train: np.ndarray, curve_points: int, device: str, threads: int | None) -> dict:
    from facegan.models.sampling import GeneratorSampler, selection_seeds
    from facegan.sample import load_generator
    from facegan.train import TrainConfig, training_loop
    from facegan.train.autotune import tune_run
    from facegan.train.presets import resolve

    cfg = TrainConfig(**resolve(preset, dict(data=str(cache), out=str(out), minutes=minutes, seed=seed,
                                             device=device, threads=threads, progress=False)))
    marks = [minutes * 60 * (k + 1) / curve_points for k in range(curve_points - 1)]  # the last point: the end
    snaps: list[tuple[float, np.ndarray]] = []

    def on_tick(progress, generator) -> None:
        if marks and progress.elapsed >= marks[0]:
            marks.pop(0)
            snaps.append((progress.nimg / 1000, GeneratorSampler(generator())(selection_seeds(1000))))

    t = time.perf_counter()
    tuned = tune_run(cfg)
    res = training_loop(cfg, tuned=tuned, on_tick=on_tick)
    G = load_generator(res.last, "ema")
    final = GeneratorSampler(G)(list(range(1000)))
    snaps.append((res.nimg / 1000, GeneratorSampler(G)(selection_seeds(1000))))
    print(f"  {preset} seed {seed}: trained {res.nimg / 1000:.1f} kimg in {res.elapsed / 60:.1f} min; scoring ...",
          flush=True)
    row = {"preset": preset, "seed": seed, "kimg": res.nimg / 1000, "minutes": res.elapsed / 60,
           "img_per_s": res.nimg / max(res.elapsed, 1e-9), "speed": tuned.best.describe() if tuned else "as given",
           "fid": scorer.fid(final), "curve": [(k, scorer.fid(x)) for k, x in snaps],
           "copy": copy_check(final, train), "wall_min": (time.perf_counter() - t) / 60}
    print(f"  {preset} seed {seed}: FID@1k {row['fid']:.1f} (floor {FLOOR_1K}); curve "
          + ", ".join(f"{k:.0f} kimg {f:.1f}" for k, f in row["curve"]), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="dcgan,cpu,gpu", help="comma-separated presets (default dcgan,cpu,gpu)")
    ap.add_argument("--minutes", type=float, default=20.0, help="training time per run (default 20)")
    ap.add_argument("--repeat", type=int, default=1, help="extra seeds of the winner (default 1)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first run of each preset (default 0)")
    ap.add_argument("--curve-points", type=int, default=2, help="FID points per run incl. the end (default 2)")
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--ref", type=Path, default=REF)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "facegan-bench" / "celeba10k-64.npy")
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: measured at the start)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()

    from facegan.images import load_uint8_array
    from facegan.runtime import configure_torch
    from facegan.train.autotune import cpu_name

    configure_torch(args.device if args.device != "auto" else "cpu", args.threads)
    cache = build_cache(args.photos, args.cache)
    train = np.asarray(load_uint8_array(cache))
    scorer = Scorer(args.ref, "cpu" if args.device == "auto" else args.device)
    root = Path(tempfile.mkdtemp(prefix="facegan-quality-"))
    print(f"{cpu_name()}; {len(train)} photos; {args.minutes:g} min per run; runs in {root}", flush=True)
    rows = []
    for preset in args.presets.split(","):
        rows.append(train_and_score(preset, args.seed, args.minutes, cache, root / f"{preset}-s{args.seed}", scorer,
                                    train, args.curve_points, args.device, args.threads))
    best = min(rows, key=lambda r: r["fid"])["preset"]
    for seed in range(args.seed + 1, args.seed + 1 + args.repeat):
        rows.append(train_and_score(best, seed, args.minutes, cache, root / f"{best}-s{seed}", scorer, train,
                                    args.curve_points, args.device, args.threads))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    base = next((r["fid"] for r in rows if r["preset"] == "dcgan" and r["seed"] == args.seed), None)
    print(f"\n| preset | seed | kimg in {args.minutes:g} min | img/s | FID@1k (seeds 0-999) | vs dcgan | floor | "
          "curve (kimg: FID@1k, seeds 1M+) | copy check median/p1 (real) |\n|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        c = r["copy"]
        ratio = f"{r['fid'] / base:.2f}x" if base else "-"
        curve = "; ".join(f"{k:.0f}: {f:.1f}" for k, f in r["curve"])
        print(f"| {r['preset']} | {r['seed']} | {r['kimg']:.1f} | {r['img_per_s']:.0f} | {r['fid']:.1f} | {ratio} | "
              f"{FLOOR_1K} | {curve} | {c['fake_median']:.1f}/{c['fake_p1']:.1f} ({c['real_median']:.1f}/"
              f"{c['real_p1']:.1f}) |")
    same = [r["fid"] for r in rows if r["preset"] == best]
    if len(same) > 1:
        print(f"\n{best}: FID@1k over {len(same)} seeds {np.mean(same):.1f} ± {np.std(same, ddof=1):.1f} "
              f"(min {min(same):.1f}, max {max(same):.1f})")


if __name__ == "__main__":
    main()
