"""How fast can the brief's DCGAN train on this CPU at all? The arithmetic of one step against
the machine's measured matrix-product peak, in fp32 and bf16, side by side.

A training step of the DCGAN at batch 128 is almost all convolution (~91 % of the time in
oneDNN's kernels here), whose arithmetic is fixed by the recipe. So images/s can never exceed
``peak FLOP/s / FLOP per image``; comparing the tutorial's and facegan's measured images/s
(``bench/train_speed.py``) with these ceilings says how much speed is left to find.

    python bench/cpu_ceiling.py [--threads N] [--tutorial IMG_S --facegan IMG_S]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import machine_report, matmul_peak  # bench/ is on sys.path when run as a script


def flop_per_image() -> float:
    """FLOP of one step per real image: D on a real and a fake batch, then G through D."""
    from facegan.models.registry import create_discriminator, create_generator

    G, D = create_generator("dcgan"), create_discriminator("dcgan")
    b = 8
    with FlopCounterMode(display=False) as counter:
        fake = G(torch.randn(b, 100))
        (D(torch.rand(b, 3, 64, 64) * 2 - 1).sum() + D(fake.detach()).sum()).backward()
        D.requires_grad_(False)
        D(fake).sum().backward()
    return counter.get_total_flops() / b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tutorial", type=float, default=None, help="the tutorial recipe's img/s (train_speed.py)")
    ap.add_argument("--facegan", type=float, default=None, help="facegan's img/s (train_speed.py)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    flop = flop_per_image()
    fp32, bf16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    print(machine_report())
    print(f"DCGAN step: {flop / 1e9:.2f} GFLOP per image (G forward+backward, D on real and fake, G through D)")
    print("\n| | matmul peak GFLOP/s | img/s ceiling | ceiling vs fp32 ceiling |\n|---|---:|---:|---:|")
    for name, peak in (("fp32", fp32), ("bf16", bf16)):
        print(f"| {name} | {peak / 1e9:.0f} | {peak / flop:.0f} | {peak / fp32:.2f}x |")
    if args.tutorial and args.facegan:
        t, f = args.tutorial * flop, args.facegan * flop
        print(f"\ntutorial {args.tutorial:.0f} img/s = {t / 1e9:.0f} GFLOP/s ({t / fp32:.0%} of the fp32 peak); "
              f"facegan {args.facegan:.0f} img/s = {f / 1e9:.0f} GFLOP/s ({f / max(fp32, bf16):.0%} of the faster "
              f"peak); that ceiling is {max(fp32, bf16) / t:.2f}x the tutorial")


if __name__ == "__main__":
    main()
