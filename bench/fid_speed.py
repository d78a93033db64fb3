"""``facegan fid`` against ``python -m pytorch_fid`` on the same 1,000 PNGs and stored reference.

    python bench/fid_speed.py                 # one run of each, interleaved
    python bench/fid_speed.py --repeats 2     # best and median of 2 each
    python bench/fid_speed.py --ablate        # also: what each speed measure pays (in-process)

Both commands run as a user would run them (fresh processes, model loading included), on
the same folder of 1,000 64×64 PNGs against the same ``.npz`` reference, with the same Inception
weights: the converted FID Inception is planted as pytorch-fid's own file in a temporary
``TORCH_HOME`` that both processes use. pytorch-fid runs with its defaults (batch 50, DataLoader
workers = min(8, CPUs)); facegan with its defaults. The PNGs are the first 1,000 photos of
``../shared/data/celeba-10k`` after the brief's Resize(64) + CenterCrop(64) (written only to a
temporary folder), and the reference is ``celeba-10k-stats.npz`` beside them; without that data,
1,000 synthetic images and a reference made by ``facegan stats`` from 2,000 others.

Printed: each run's wall time, the best/median per tool, the ratio, and both FID values.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import SHARED, machine_report, matmul_peak  # bench/ is on sys.path when run as a script


def inception_flop_per_image(state_dict: dict) -> float:
    """FLOP of one FID Inception forward (299x299 input), counted by PyTorch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from facegan.fid.inception import build_inception, pool3

    model = build_inception(state_dict, channels_last=False)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        pool3(model, torch.zeros(1, 3, 299, 299))
    return float(counter.get_total_flops())


def make_pngs(folder: Path, n: int) -> str:
    """1,000 64×64 PNGs in ``folder``; returns what they are."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted((SHARED / "celeba-10k").glob("*.jpg"))[:n]
    if len(photos) == n:
        from torchvision import transforms as T

        tf = T.Compose([T.Resize(64), T.CenterCrop(64)])
        for i, p in enumerate(photos):
            tf(Image.open(p).convert("RGB")).save(folder / f"{i:04d}.png")
        return f"the first {n} photos of celeba-10k, Resize(64)+CenterCrop(64)"
    rng = np.random.default_rng(0)
    for i in range(n):
        coarse = rng.integers(0, 256, (8, 8, 3)).astype(np.float32).repeat(8, 0).repeat(8, 1)
        Image.fromarray(np.clip(coarse + rng.normal(0, 10, coarse.shape), 0, 255).astype(np.uint8)).save(
            folder / f"{i:04d}.png"
        )
    return f"{n} synthetic 64x64 images (celeba-10k not found)"


def reference(tmp: Path, env: dict) -> tuple[Path, str]:
    ref = SHARED / "celeba-10k-stats.npz"
    if ref.is_file():
        return ref, str(ref)
    other = tmp / "ref-images"
    make_pngs(other, 2000)
    out = tmp / "ref.npz"
    subprocess.run([sys.executable, "-m", "facegan", "stats", str(other), "-o", str(out), "--quiet"],
                   env=env, check=True)
    return out, "facegan stats of 2,000 other synthetic images"


def timed(cmd: list[str], env: dict, pattern: str) -> tuple[float, float]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return elapsed, float(re.search(pattern, out.stdout).group(1))


def ablate(pngs: Path, n: int = 200) -> None:
    """ms/image of the Inception forward alone under each speed measure, in one process."""
    import torch
    import torch.nn.functional as F

    from facegan.fid import inception as inc
    from facegan.fid.sources import open_images

    imgs = np.concatenate(list(open_images(pngs).batches(n)))[:n]
    sd = inc.resolve_weights().state_dict
    variants = [
        ("pytorch-fid's way: no_grad, NCHW, BN, batch 50", dict(fuse=False, cl=False, inf=False, bs=50)),
        ("+ inference_mode", dict(fuse=False, cl=False, inf=True, bs=50)),
        ("+ channels_last", dict(fuse=False, cl=True, inf=True, bs=50)),
        ("+ BatchNorm folded", dict(fuse=True, cl=True, inf=True, bs=50)),
        ("+ batch 8 (facegan's CPU default)", dict(fuse=True, cl=True, inf=True, bs=8)),
        ("  same, batch 16", dict(fuse=True, cl=True, inf=True, bs=16)),
    ]
    models = {}
    results = {name: [] for name, _ in variants}
    for _ in range(2):  # interleaved twice: the cores are shared, take the best
        for name, v in variants:
            key = (v["fuse"], v["cl"])
            if key not in models:
                models[key] = inc.build_inception(sd, fuse=v["fuse"], channels_last=v["cl"])
            model = models[key]
            ctx = torch.inference_mode if v["inf"] else torch.no_grad
            t = time.perf_counter()
            with ctx():
                for i in range(0, n, v["bs"]):
                    x = torch.from_numpy(imgs[i : i + v["bs"]]).permute(0, 3, 1, 2)
                    x = x if v["cl"] else x.contiguous()
                    x = F.interpolate(x.float().div(255), size=(299, 299), mode="bilinear", align_corners=False)
                    x = 2 * x - 1
                    inc.pool3(model, x.contiguous(memory_format=torch.channels_last) if v["cl"] else x)
            results[name].append((time.perf_counter() - t) / n * 1000)
    # malloc tuning is process-wide and cannot be undone: its rows come after all the others
    from facegan.runtime import keep_freed_memory

    tuned = [("+ malloc keeps freed memory (facegan fid/stats)", dict(fuse=True, cl=True, inf=True, bs=8)),
             ("  same, batch 50", dict(fuse=True, cl=True, inf=True, bs=50))]
    keep_freed_memory()
    for _ in range(2):
        for name, v in tuned:
            model = models[(True, True)]
            t = time.perf_counter()
            with torch.inference_mode():
                for i in range(0, n, v["bs"]):
                    x = torch.from_numpy(imgs[i : i + v["bs"]]).permute(0, 3, 1, 2)
                    x = F.interpolate(x.float().div(255), size=(299, 299), mode="bilinear", align_corners=False)
                    inc.pool3(model, (2 * x - 1).contiguous(memory_format=torch.channels_last))
            results.setdefault(name, []).append((time.perf_counter() - t) / n * 1000)
    base = min(results[variants[0][0]])
    print(f"\nInception forward alone, {n} images, best of 2 (ms/image, speed-up vs the first row):")
    for name, _ in variants + tuned:
        best = min(results[name])
        print(f"  {name:48s} {best:7.1f}   {base / best:4.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="images to score")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each tool, interleaved")
    parser.add_argument("--ablate", action="store_true", help="also time each speed measure alone")
    args = parser.parse_args()

    from facegan.fid import inception as inc

    weights = inc.resolve_weights()  # facegan's offline resolution (converts once if needed)
    with tempfile.TemporaryDirectory(prefix="fid-bench-") as tmp_name:
        tmp = Path(tmp_name)
        planted = tmp / "torch-home" / "hub" / "checkpoints" / inc.PYTORCH_FID_FILENAME
        planted.parent.mkdir(parents=True)
        import torch

        torch.save(weights.state_dict, planted)
        env = dict(os.environ, TORCH_HOME=str(tmp / "torch-home"), PYTHONWARNINGS="ignore")
        pngs = tmp / "samples"
        what = make_pngs(pngs, args.n)
        ref, ref_what = reference(tmp, env)
        print(f"samples:   {what}\nreference: {ref_what}\nweights:   sha256 {weights.sha256[:16]} "
              f"(both tools; pytorch-fid's file planted in a temporary TORCH_HOME)")
        print(f"machine:   {machine_report()}\n")

        cmds = {
            "pytorch_fid": ([sys.executable, "-m", "pytorch_fid", str(pngs), str(ref), "--device", "cpu"],
                            r"FID:\s+([0-9.eE+-]+)"),
            "facegan fid": ([sys.executable, "-m", "facegan", "fid", str(pngs), str(ref), "--quiet"],
                            r"FID\s+([0-9.eE+-]+)"),
        }
        times: dict[str, list[float]] = {k: [] for k in cmds}
        values: dict[str, float] = {}
        for r in range(args.repeats):
            order = list(cmds) if r % 2 == 0 else list(reversed(cmds))
            for name in order:
                cmd, pattern = cmds[name]
                seconds, value = timed(cmd, env, pattern)
                times[name].append(seconds)
                values[name] = value
                print(f"run {r + 1}: {name:12s} {seconds:7.1f} s   FID {value:.6f}", flush=True)

        pf, fg = times["pytorch_fid"], times["facegan fid"]
        print(f"\n{'':14s}{'best s':>9s}{'median s':>10s}{'FID':>14s}")
        for name in cmds:
            print(f"{name:14s}{min(times[name]):9.1f}{statistics.median(times[name]):10.1f}{values[name]:14.6f}")
        print(f"\nspeed-up (pytorch_fid / facegan): best {min(pf) / min(fg):.2f}x, "
              f"median {statistics.median(pf) / statistics.median(fg):.2f}x")
        print(f"|FID difference|: {abs(values['pytorch_fid'] - values['facegan fid']):.2e}")
        flop, peak = inception_flop_per_image(weights.state_dict), matmul_peak(torch.float32)
        print(f"Inception: {flop / 1e9:.2f} GFLOP per image at 299x299; fp32 matmul peak {peak / 1e9:.0f} GFLOP/s; "
              + ", ".join(f"{name} {args.n * flop / min(times[name]) / peak:.0%} of it (whole command)" for name in cmds))
        if args.ablate:
            ablate(pngs)


if __name__ == "__main__":
    main()
