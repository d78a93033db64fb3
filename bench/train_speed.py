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

``--against REV`` compares facegan with itself instead: the facegan of commit ``REV`` (checked
out into a temporary ``git worktree``) against the current tree's, each side in its own child
process (``_speed_child.py`` with ``PYTHONPATH=<tree>/src``, so both pay the same process
costs), timed in alternating windows, with img/s of each and their ratio side by side. The
child builds its side with whichever API that facegan has (the method object, else the older
``build_parts``), so a commit from before the method seam works::

    python bench/train_speed.py --against 2027caf [--seconds 45] [--rounds 3] [--precision fp32]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from _common import add_data_arguments, build_cache, machine_report, matmul_peak  # bench/ is on sys.path
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
    """One-step function of facegan's training: the method's own step, built as the loop builds it
    (:func:`facegan.train.methods.build_training`: registry models, in-memory ``BatchLoader`` with
    flips, Adam, the step module, the EMA update), minus logging and checkpoints. ``train``:
    further TrainConfig fields (e.g. ``arch``, ``g``)."""
    from facegan.images import load_uint8_array
    from facegan.runtime import configure_torch
    from facegan.train.config import TrainConfig
    from facegan.train.distributed import DistInfo
    from facegan.train.methods import build_training

    configure_torch("cpu")  # as `facegan train` does at its entry
    cfg = TrainConfig(data=str(cache), out="unused", kimg=1, device="cpu", precision=precision,
                      channels_last=channels_last, matmul_convs=matmul_convs, batch=BATCH, **train)
    n_threads = threads or torch.get_num_threads()
    method, loader = build_training(cfg, load_uint8_array(cache), DistInfo())

    def step() -> None:
        method.step(lambda: next(loader))

    desc = f"{method.describe()}, {n_threads} thread{'s' * (n_threads > 1)}"
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


REPO = Path(__file__).resolve().parents[1]


class ChildSide:
    """A facegan side in a child process importing ``src`` (see ``_speed_child.py``)."""

    def __init__(self, src: Path, cache: Path, over: dict):
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_speed_child.py")), str(cache),
                                      json.dumps(over)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd=str(src.parent))
        self.desc = self._read().removeprefix("ready ")

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the speed child for {self.proc.args[-2]} ended early (rc {self.proc.wait()})")
        return line.strip()

    def ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("quit")
            except (BrokenPipeError, SystemExit):
                pass
            self.proc.wait(timeout=30)


def against(rev: str, cache: Path, seconds: float, rounds: int, over: dict) -> dict[str, float]:
    """img/s of facegan at ``rev`` and of the current tree, in alternating windows; prints both
    and the ratio (current / rev)."""
    tmp = Path(tempfile.mkdtemp(prefix="facegan-against-"))
    tree = tmp / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev], check=True,
                   stdout=subprocess.DEVNULL)
    sides: dict[str, ChildSide] = {}
    try:
        sides[rev] = ChildSide(tree / "src", cache, over)
        sides["current"] = ChildSide(REPO / "src", cache, over)
        for name, side in sides.items():
            print(f"  {name}: {side.desc}", flush=True)
            side.ask("warmup 2")
        done = {k: 0 for k in sides}
        spent = {k: 0.0 for k in sides}
        for r in range(rounds):
            for name, side in sides.items():  # one side at a time; the other waits on its stdin
                images, elapsed = side.ask(f"run {seconds / rounds}").split()
                done[name] += int(images)
                spent[name] += float(elapsed)
            print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {done[k] / spent[k]:.1f}" for k in sides), flush=True)
    finally:
        for side in sides.values():
            side.close()
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    rates = {k: done[k] / spent[k] for k in sides}
    print(f"\n| facegan | img/s | vs {rev} |\n|---|---:|---:|")
    for k, rate in rates.items():
        print(f"| {k} | {rate:.1f} | {rate / rates[rev]:.3f}x |")
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(ap)
    ap.add_argument("--seconds", type=float, default=45.0, help="steady-state seconds per side (default 45)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing windows per side (default 3)")
    ap.add_argument("--ablate", action="store_true", help="also time facegan in fp32 NCHW (where the speed comes from)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for both sides (default: torch's, one per core)")
    ap.add_argument("--against", metavar="REV", default=None,
                    help="time facegan at git commit REV against the current tree (each in a child process) "
                    "instead of against the tutorial")
    ap.add_argument("--precision", default="auto", help="with --against: --precision of both sides (default auto)")
    ap.add_argument("--matmul-convs", default="auto", help="with --against: --matmul-convs of both sides (default auto)")
    ap.add_argument("--batch", type=int, default=BATCH, help=f"with --against: the batch (default {BATCH})")
    args = ap.parse_args()
    if args.against is not None:  # facegan against itself: the cache may stand alone (no photos needed)
        cache = args.cache if args.cache.is_file() else build_cache(args.photos, args.cache)
        print(f"{machine_report()}; facegan at {args.against} vs the current tree, batch {args.batch}, "
              f"{args.seconds:g} s per side in {args.rounds} alternating windows; cache {cache}", flush=True)
        over = {"device": "cpu", "batch": args.batch, "precision": args.precision, "matmul_convs": args.matmul_convs,
                "threads": args.threads}
        against(args.against, cache, args.seconds, args.rounds, over)
        return
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
