"""Quality: the default recipe trained for a fixed time on the shared photos, then FID@1k.

Trains ``facegan.train.training_loop`` with its defaults for ``--minutes`` on the 64×64 cache of
``../shared/data/celeba-10k``, then scores 1,000 samples (seeds 0…999) against the photos'
statistics (``celeba-10k-stats.npz``) for several ways of sampling the same run, to show which
one ``facegan sample`` should use:

* G — the raw generator in eval mode (BatchNorm with its running statistics);
* EMA, statistics copied from G — the weight average with G's BatchNorm running statistics;
* EMA, statistics recalibrated — the average with statistics re-estimated for its own weights
  (what the checkpoint holds and ``facegan sample`` uses);
* G / EMA with batch statistics — train-mode BatchNorm over batches of 125 samples (image i then
  depends on its batch-mates, so it is not the default).

Each score is printed beside the real-data floor (1,000 real photos vs the other 9,000: ≈16.4)
and a copy check: for each generated image the distance to its nearest training photo in pixel
space, against the same for real photos (to their nearest *other* photo). A generator copying
its training set would show sample distances far below the real ones.

    python bench/quality.py [--minutes 20] [--device auto]

Needs the FID engine (``facegan.fid``) for the scores.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import SHARED, build_cache  # bench/ is on sys.path when run as a script

FLOOR_1K = 16.43  # celeba-10k-figures.md: 1,000 real vs the other 9,000, mean of 10 splits


@torch.no_grad()
def generate_batch_stats(generator: torch.nn.Module, n: int, batch: int, device) -> np.ndarray:
    """Seeds 0..n-1 with BatchNorm in train mode (statistics of each batch of ``batch``)."""
    from facegan.sample import noise_for_seeds, to_uint8

    g = copy.deepcopy(generator).to(device).train()  # train mode would update the copy's running stats only
    out = [to_uint8(g(noise_for_seeds(range(i, min(i + batch, n)), g.z_dim).to(device))) for i in range(0, n, batch)]
    return np.concatenate(out)


def nearest_distances(queries: np.ndarray, pool: np.ndarray, exclude_self: bool = False, chunk: int = 250) -> np.ndarray:
    """For each query image, the RMS pixel distance (0-255 scale) to its nearest image in ``pool``."""
    p = torch.from_numpy(np.asarray(pool.reshape(len(pool), -1), dtype=np.float32))
    p_sq = (p * p).sum(1)
    out = []
    for i in range(0, len(queries), chunk):
        q = torch.from_numpy(np.asarray(queries[i : i + chunk].reshape(-1, p.shape[1]), dtype=np.float32))
        d2 = (q * q).sum(1, keepdim=True) + p_sq[None] - 2 * q @ p.T  # ‖q−p‖² without the (N, M, D) tensor
        if exclude_self:
            d2[torch.arange(len(q)), torch.arange(i, i + len(q))] = float("inf")
        out.append(d2.clamp_min(0).min(1).values)
    return (torch.cat(out) / p.shape[1]).sqrt().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="training time (default 20)")
    ap.add_argument("--photos", type=Path, default=SHARED / "celeba-10k")
    ap.add_argument("--ref", type=Path, default=SHARED / "celeba-10k-stats.npz")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "facegan-bench" / "celeba10k-64.npy")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default: a new temporary one)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("-n", type=int, default=1000, help="samples per FID (default 1000, the brief's)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for training (default: one per core)")
    args = ap.parse_args()

    from facegan.fid import FIDScorer, Stats, frechet_distance  # the FID engine (another module of facegan)
    from facegan.images import load_uint8_array
    from facegan.sample import generate
    from facegan.train import TrainConfig, training_loop
    from facegan.train.checkpoint import build_generator, load
    from facegan.train.distributed import pick_device

    device = pick_device(args.device)
    out = args.out or Path(tempfile.mkdtemp(prefix="facegan-quality-")) / "run"
    cache = build_cache(args.photos, args.cache)
    print(f"training the default recipe for {args.minutes:g} min on {device} -> {out}", flush=True)
    res = training_loop(TrainConfig(data=str(cache), out=str(out), minutes=args.minutes, device=args.device,
                                    threads=args.threads))
    state = load(res.last)

    G = build_generator(state["config"])
    G.load_state_dict(state["G"])
    E_recal = build_generator(state["config"])
    E_recal.load_state_dict(state["G_ema"])
    E_copy = copy.deepcopy(E_recal)
    bn_keys = [k for k in state["G"] if "running_" in k or "num_batches" in k]
    E_copy.load_state_dict({**state["G_ema"], **{k: state["G"][k] for k in bn_keys}})
    G, E_recal, E_copy = (m.to(device).eval() for m in (G, E_recal, E_copy))
    seeds = list(range(args.n))
    variants = {
        "G (eval mode, its running BN statistics)": generate(G, seeds, device=device),
        "EMA, BN statistics copied from G": generate(E_copy, seeds, device=device),
        "EMA, BN statistics recalibrated (default)": generate(E_recal, seeds, device=device),
        "G, batch statistics (batches of 125)": generate_batch_stats(G, args.n, 125, device),
        "EMA, batch statistics (batches of 125)": generate_batch_stats(E_recal, args.n, 125, device),
    }

    scorer = FIDScorer(device)
    ref = Stats.load(args.ref)
    rows = []
    for name, images in variants.items():
        t = time.perf_counter()
        s = scorer.statistics(images)
        fid = float(frechet_distance(s.mu, s.sigma, ref.mu, ref.sigma))
        rows.append((name, fid))
        print(f"  {name}: FID@{args.n} {fid:.1f}  ({time.perf_counter() - t:.0f} s)", flush=True)

    train = np.asarray(load_uint8_array(cache))
    fake_nn = nearest_distances(variants["EMA, BN statistics recalibrated (default)"], train)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(train), size=min(args.n, len(train)), replace=False)
    pool = np.concatenate([train[idx], np.delete(train, idx, axis=0)])  # queries first, so "self" is index i
    real_nn = nearest_distances(train[idx], pool, exclude_self=True)

    print(f"\ntrained {state['nimg'] / 1000:.1f} kimg in {state['elapsed'] / 60:.1f} min on {device} "
          f"(step {state['step']}); FID@{args.n} vs {args.ref.name}; real-data floor ≈ {FLOOR_1K}")
    print(f"\n| sampling ({args.minutes:g} min run) | FID@{args.n} | floor |\n|---|---:|---:|")
    for name, fid in rows:
        print(f"| {name} | {fid:.1f} | {FLOOR_1K} |")
    best = min(rows, key=lambda r: r[1])
    print(f"\nbest sampling for this run: {best[0]} (FID {best[1]:.1f})")
    print("\ncopy check (RMS pixel distance 0-255 to the nearest training photo; median / 1st percentile / min):")
    print(f"  generated (EMA recalibrated): {np.median(fake_nn):.1f} / {np.percentile(fake_nn, 1):.1f} / {fake_nn.min():.1f}")
    print(f"  real photos (to another one): {np.median(real_nn):.1f} / {np.percentile(real_nn, 1):.1f} / {real_nn.min():.1f}")


if __name__ == "__main__":
    main()
