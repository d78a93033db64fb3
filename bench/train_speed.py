"""Training speed: facegan's DCGAN loop against the plain PyTorch-tutorial recipe, in one run.

Both sides train the same DCGAN (the brief's: G 100→64×64, ngf = ndf = 64) with batch 128 and
Adam(2e-4, β=(0.5, 0.999)) on the same photos (``../shared/data/celeba-10k``):

* tutorial — ``ImageFolder`` + ``Resize(64)/CenterCrop(64)/ToTensor/Normalize`` + ``DataLoader``
  with 2 workers, fp32, NCHW, as in the PyTorch DCGAN tutorial (run first, before anything here
  sets flush-denormal, which is process-wide);
* facegan — the training loop's own parts with its defaults: the uint8 cache in memory
  (``BatchLoader``, flips), ``GanStep`` with bf16 autocast where the CPU has AVX512-BF16/AMX,
  channels_last, the 4×4-map convolutions as matrix products (``facegan.models.matmul_conv``),
  flush-denormal, and the EMA update; ``--ablate`` adds it in fp32 NCHW and in bf16
  channels_last without the matrix products, to show where the speed comes from.

Flush-denormal is process-wide and is set when the facegan side is built, so the tutorial side
runs with it too (that can only flatter the tutorial). The sides are timed in alternating
windows after warm-up steps, so load from other users of the machine hits all alike.

    python bench/train_speed.py [--seconds 45] [--rounds 3] [--ablate]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from _common import PHOTOS as DEFAULT_PHOTOS  # bench/ is on sys.path when run as a script
from _common import build_cache, machine_report, matmul_peak
from cpu_ceiling import flop_per_image

BATCH = 128


@dataclass
class Side:
    """One contender: ``step()`` trains one batch; ``start``/``stop`` bracket each timed window."""

    step: Callable[[], None]
    start: Callable[[], None] = lambda: None
    stop: Callable[[], None] = lambda: None


def tutorial_stepper(photos: Path):
    """One-step function of the tutorial recipe (ImageFolder wants a class subfolder: a symlink)."""
    import torchvision.datasets as dset
    import torchvision.transforms as T

    from facegan.models.registry import create_discriminator, create_generator

    root = Path(tempfile.mkdtemp(prefix="facegan-bench-if-"))
    (root / "faces").symlink_to(photos.resolve())
    ds = dset.ImageFolder(str(root), transform=T.Compose([
        T.Resize(64), T.CenterCrop(64), T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ]))
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=2, drop_last=True)
    torch.manual_seed(0)
    G, D = create_generator("dcgan"), create_discriminator("dcgan")
    crit = torch.nn.BCEWithLogitsLoss()  # our D ends in a logit; the tutorial's Sigmoid + BCELoss is the same maths
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones, zeros = torch.ones(BATCH), torch.zeros(BATCH)
    state = {"it": None, "next": None}

    def start() -> None:
        """Start the workers and wait for the first batch (untimed: worker start-up is not steady state)."""
        state["it"] = iter(loader)
        state["next"] = next(state["it"])

    def stop() -> None:
        """Shut the workers down, so they use no CPU while the other side is timed."""
        state["it"] = state["next"] = None

    def step() -> None:
        real, _ = state["next"]
        try:
            state["next"] = None
            D.zero_grad()
            crit(D(real), ones).backward()
            fake = G(torch.randn(BATCH, 100))
            crit(D(fake.detach()), zeros).backward()
            opt_d.step()
            G.zero_grad()
            crit(D(fake), ones).backward()
            opt_g.step()
        finally:
            try:
                state["next"] = next(state["it"])
            except StopIteration:  # end of the epoch: a new one (as the tutorial's epoch loop does)
                start()

    def cleanup() -> None:
        stop()
        shutil.rmtree(root, ignore_errors=True)

    return Side(step, start, stop), cleanup


def facegan_stepper(cache: Path, precision: str = "auto", channels_last: bool = True, matmul_convs: str = "auto",
                    threads: int | None = None, **train: object):
    """One-step function of facegan's training, built by the loop's own ``build_parts`` (registry
    models, in-memory ``BatchLoader`` with flips, Adam, the step module, the EMA update), minus
    logging and checkpoints. ``train``: further TrainConfig fields (e.g. ``arch``, ``g``)."""
    from facegan.images import load_uint8_array
    from facegan.runtime import configure_torch
    from facegan.train.config import TrainConfig
    from facegan.train.distributed import DistInfo
    from facegan.train.ema import ema_beta, update_ema
    from facegan.train.loop import build_parts

    configure_torch("cpu")  # as `facegan train` does at its entry
    cfg = TrainConfig(data=str(cache), out="unused", kimg=1, device="cpu", precision=precision,
                      channels_last=channels_last, matmul_convs=matmul_convs, batch=BATCH, **train)
    n_threads = threads or torch.get_num_threads()
    parts = build_parts(cfg, load_uint8_array(cache), DistInfo())
    nimg = 0

    def next_noise() -> torch.Tensor:
        return torch.randn(BATCH, cfg.z_dim, generator=parts.noise)

    def step() -> None:
        nonlocal nimg
        parts.step(lambda: next(parts.loader), next_noise)
        nimg += BATCH * cfg.n_dis
        update_ema(parts.G_ema, parts.G, ema_beta(BATCH, nimg, cfg.ema_kimg, cfg.ema_rampup))

    desc = (f"{parts.precision}, {'channels_last' if parts.channels_last else 'NCHW'}"
            f"{', 4x4-map convs as matmuls' if parts.matmul else ''}, {n_threads} thread{'s' * (n_threads > 1)}")
    default_threads = torch.get_num_threads()
    return Side(step, start=lambda: torch.set_num_threads(n_threads),
                stop=lambda: torch.set_num_threads(default_threads)), desc


def measured_choice(cache: Path):
    """What `facegan train` would pick on this machine: its speed check, measured now (no cache)."""
    from facegan.images import load_uint8_array
    from facegan.train.autotune import tune
    from facegan.train.config import TrainConfig

    cfg = TrainConfig(data=str(cache), out="unused", kimg=1, device="cpu", batch=BATCH)
    result = tune(cfg, load_uint8_array(cache), use_cache=False)
    print("  " + result.report(), flush=True)
    return result.best


def time_interleaved(sides: dict[str, Side], seconds: float, rounds: int, warmup: int = 2) -> dict[str, float]:
    """img/s of each side, timed in ``rounds`` alternating windows of ``seconds / rounds``.

    Alternating short windows spreads any load from other users of the machine evenly over
    all sides, so the ratios stay fair even when the absolute numbers move. Only one side runs
    at a time (the tutorial's loader workers are stopped outside its windows).
    """
    for side in sides.values():
        side.start()
        for _ in range(warmup):
            side.step()
        side.stop()
    done = {k: 0 for k in sides}
    spent = {k: 0.0 for k in sides}
    for r in range(rounds):
        for name, side in sides.items():
            side.start()
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds / rounds:
                side.step()
                done[name] += BATCH
            spent[name] += time.perf_counter() - t0
            side.stop()
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {done[k] / spent[k]:.1f}" for k in sides), flush=True)
    return {k: done[k] / spent[k] for k in sides}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "facegan-bench" / "celeba10k-64.npy")
    ap.add_argument("--seconds", type=float, default=45.0, help="steady-state seconds per side (default 45)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing windows per side (default 3)")
    ap.add_argument("--ablate", action="store_true", help="also time facegan in fp32 NCHW (where the speed comes from)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for both sides (default: torch's, one per core)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.photos.is_dir():
        raise SystemExit(f"{args.photos}: the benchmark photos are not there")
    print(f"{machine_report()}; batch {BATCH}, {args.seconds:.0f} s per side in {args.rounds} alternating windows; "
          f"photos {args.photos}", flush=True)
    cache = build_cache(args.photos, args.cache)
    tut_step, cleanup = tutorial_stepper(args.photos)
    steppers = {"tutorial": tut_step}
    descs = {"tutorial": "ImageFolder + transforms + DataLoader(2 workers), fp32, NCHW"}
    if args.ablate:  # one change at a time, in the order they were added
        for name, kw in [("facegan-fp32", dict(precision="fp32", channels_last=False, matmul_convs="off")),
                         ("facegan-bf16-cl", dict(matmul_convs="off"))]:
            steppers[name], d = facegan_stepper(cache, **kw)
            descs[name] = f"facegan: in-memory uint8 cache, {d}"
    if args.ablate:  # what the rules alone (before the speed check) would have used
        steppers["facegan-rules"], d = facegan_stepper(cache)
        descs["facegan-rules"] = f"facegan, assumed rules: in-memory uint8 cache, {d}"
    best = measured_choice(cache)
    steppers["facegan"], d = facegan_stepper(cache, precision=best.precision, matmul_convs=best.matmul_convs,
                                             threads=best.threads)
    descs["facegan"] = f"facegan auto (measured): in-memory uint8 cache, {d}"
    try:
        rates = time_interleaved(steppers, args.seconds, args.rounds)
    finally:
        cleanup()
    base = rates["tutorial"]
    # the share of the CPU's measured matrix-product peak each side reaches (its own precision's)
    flop = flop_per_image()
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"\nmatmul peak: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s; "
          f"{flop / 1e9:.2f} GFLOP per image-step")
    print("\n| recipe (same DCGAN, batch 128, Adam 2e-4/0.5) | img/s | vs tutorial | share of peak |\n|---|---:|---:|---:|")
    for k, rate in rates.items():
        peak = peaks["bf16" if ", bf16," in f", {descs[k]}," else "fp32"]  # the side's own precision
        print(f"| {descs[k]} | {rate:.1f} | {rate / base:.2f}x | {rate * flop / peak:.0%} |")


if __name__ == "__main__":
    main()
