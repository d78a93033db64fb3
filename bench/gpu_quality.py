"""One prepared GPU run: ``--preset`` (default ``gpu``) for a fixed wall time on a bare machine, samples back as .npy.

Made for the device tool's one H200 (a copy of the working tree plus the shared JPEGs; neither
the FID statistics nor the Inception weights travel, so nothing is scored there):

1. prepares the photos into the 64x64 cache (``facegan prepare``'s library call, all cores);
2. trains ``--preset`` (``gpu``, ``stylegan2``, …) for ``--minutes`` of training time, saving at ``--snapshots`` evenly
   spaced points 1,000 EMA samples on the selection seeds (1,000,000 and up: the curve, disjoint
   from the handed-in ones) as uint8 ``curve-KIMG.npy``;
3. writes the final 1,000 samples, seeds 0…999 (what ``facegan sample`` hands in), as
   ``final.npy``, plus ``stats.jsonl``, ``config.json``, the last grid and ``summary.json``
   (images/s, FLOP per image and the share of the GPU's bf16 peak it reached).

Afterwards, on the CPU: ``python bench/score_npy.py OUT`` scores them (FID@1k of each file
against ``celeba-10k-stats.npz``, the floor beside it, the copy check). Dry-run it on the CPU first:

    python bench/gpu_quality.py --photos ../shared/data/celeba-10k --out /tmp/gq --minutes 0.5 --tiny
    python bench/gpu_quality.py --preset stylegan2 --photos ../shared/data/celeba-10k --out /tmp/gq --minutes 0.5 --tiny

``--tiny`` shrinks the preset's networks to a few channels (per family, :data:`TINY`) with batch 16
and fp32: it checks the script's plumbing, not the recipe.

On the device: ``PYTHONPATH=src python3 bench/gpu_quality.py --photos .carry/celeba-10k --out $OUT``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # runnable without installing

#: Per family: the networks' options of a CPU dry run (a few channels; the recipe stays the preset's).
TINY: dict[str, dict] = {
    "dcgan": {"g": {"ngf": 8}, "d": {"ndf": 8}},
    "resnet": {"g": {"ch": 4}, "d": {"ch": 4}},
    "stylegan2": {"g": {"channel_base": 64, "channel_max": 8, "z_dim": 16, "w_dim": 16},
                  "d": {"channel_base": 64, "channel_max": 8}},
}

#: bf16 dense peak of one H200 (NVIDIA's figure without sparsity; ~790 measured here on 8192^3 products).
H200_BF16_PEAK = 989e12


def flop_per_image(cfg, parts) -> float:  # parts: the GAN method (its G and D)
    """FLOP of one training step (D on real and fake, then G through D) per real image, counted
    by torch's FlopCounterMode (convolutions and matrix products) on a small batch."""
    from torch.utils.flop_counter import FlopCounterMode

    b = 8
    dev = next(parts.G.parameters()).device
    real = torch.rand(b, 3, cfg.resolution, cfg.resolution, device=dev) * 2 - 1
    g = torch.Generator(device=dev).manual_seed(0)
    G, D = parts.G, parts.D
    with FlopCounterMode(display=False) as counter:
        fake = G(torch.randn(b, cfg.z_dim, device=dev, generator=g))
        (D(torch.cat([real, fake.detach()])).sum()).backward()
        D(fake).sum().backward()
    G.zero_grad(set_to_none=True)
    D.zero_grad(set_to_none=True)
    return counter.get_total_flops() / b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="gpu", help="the training preset to run (default gpu; e.g. stylegan2)")
    ap.add_argument("--photos", type=Path, required=True, help="folder of the CelebA JPEGs")
    ap.add_argument("--out", type=Path, required=True, help="where the .npy files and logs go")
    ap.add_argument("--minutes", type=float, default=8.0, help="training time (default 8)")
    ap.add_argument("--snapshots", type=int, default=4, help="curve points incl. the end (1,000 samples each; default 4)")
    ap.add_argument("--n", type=int, default=1000, help="samples per set (default 1000)")
    ap.add_argument("--tiny", action="store_true", help="a tiny network for a CPU dry run")
    ap.add_argument("--compile", action="store_true", help="torch.compile G and D")
    args = ap.parse_args()
    t_start = time.perf_counter()

    from facegan.data import prepare
    from facegan.devices import pick_device
    from facegan.images import load_uint8_array
    from facegan.models.sampling import selection_seeds
    from facegan.runtime import configure_torch
    from facegan.train.entry import resolve_config, run_training
    from facegan.train.presets import PRESETS, resolve

    if args.preset not in PRESETS:
        raise SystemExit(f"--preset {args.preset!r}: unknown; choose one of {', '.join(PRESETS)}")
    device = pick_device("auto")
    configure_torch(device)
    args.out.mkdir(parents=True, exist_ok=True)
    run = args.out / "run"
    if run.exists():
        shutil.rmtree(run)
    cache = args.out / "cache64.npy"
    t = time.perf_counter()
    if not cache.is_file():
        prepare(args.photos, cache, progress=False, log=lambda *a, **k: None)  # all cores by default
    n_photos = len(load_uint8_array(cache))
    print(f"prepared {n_photos} photos in {time.perf_counter() - t:.1f} s; device {device} "
          f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), torch {torch.__version__}",
          flush=True)

    over = dict(data=str(cache), out=str(run), minutes=args.minutes, device=str(device.type), progress=False,
                compile=args.compile)
    if args.tiny:
        arch = resolve(args.preset, {}).get("arch", "dcgan")
        over.update(TINY.get(arch, {}), batch=16, tick_kimg=0.064, grid_kimg=1.0, precision="fp32")
    cfg = resolve_config({**over, "preset": args.preset})
    every_s = args.minutes * 60 / args.snapshots
    next_snap = [every_s]
    snaps: list[dict] = []

    def on_tick(progress, sampler) -> None:
        if progress.elapsed < next_snap[0] or len(snaps) >= args.snapshots - 1:
            return
        t0 = time.perf_counter()
        images = sampler()(selection_seeds(args.n))
        name = f"curve-{progress.nimg:010d}.npy"
        np.save(args.out / name, images)
        snaps.append({"file": name, "kimg": progress.nimg / 1000, "minutes": progress.elapsed / 60,
                      "sample_s": round(time.perf_counter() - t0, 2)})
        print(f"snapshot {name}: kimg {progress.nimg / 1000:.0f} at {progress.elapsed / 60:.2f} min", flush=True)
        next_snap[0] += every_s

    res = run_training(cfg, tune=False, on_tick=on_tick)  # no speed check: the loop takes the GPU's native precision
    from facegan.sample import load_sampler

    S = load_sampler(res.last, "ema", device)
    final = S(list(range(args.n)))  # seeds 0..n-1: the handed-in set
    np.save(args.out / "final.npy", final)
    last_curve = S(selection_seeds(args.n))
    np.save(args.out / f"curve-{res.nimg:010d}.npy", last_curve)
    snaps.append({"file": f"curve-{res.nimg:010d}.npy", "kimg": res.nimg / 1000, "minutes": res.elapsed / 60})

    from facegan.train.distributed import DistInfo
    from facegan.train.methods import build_method

    flop = flop_per_image(cfg, build_method(cfg, DistInfo(device=device)))
    img_s = res.nimg / max(res.elapsed, 1e-9)
    summary = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": str(torch.__version__), "preset": args.preset, "tiny": args.tiny, "minutes_trained": res.elapsed / 60,
        "kimg": res.nimg / 1000, "steps": res.step, "img_per_s": img_s, "gflop_per_img": flop / 1e9,
        "share_of_bf16_peak": img_s * flop / H200_BF16_PEAK if device.type == "cuda" else None,
        "snapshots": snaps, "wall_s": time.perf_counter() - t_start, "photos": n_photos,
        "config": json.loads((run / "config.json").read_text()),
    }
    # At most 8 files come back: final.npy, the curve's .npy files, summary.json, stats.jsonl, one grid.
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    shutil.copy(run / "stats.jsonl", args.out / "stats.jsonl")
    grids = sorted(run.glob("grid-0*.png"))
    if grids:
        shutil.copy(grids[-1], args.out / "grid-last.png")
    shutil.rmtree(run)  # checkpoints stay behind: only the samples and logs come back
    cache.unlink()
    cache.with_suffix(".json").unlink(missing_ok=True)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1), flush=True)


if __name__ == "__main__":
    main()
