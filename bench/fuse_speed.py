"""Eval-mode CPU inference with and without BatchNorm folded into the convolutions.

    python bench/fuse_speed.py                       # resnet18, resnet50, vgg16-bn at 224x224, batch 2
    python bench/fuse_speed.py --models resnet18 --size 64 --batch 16 --reps 10

For each model: build it (random weights, BatchNorm statistics randomised so the fold is not
trivial), fold with facegan.cnn.fuse_conv_bn, check the outputs agree, then time the two
versions in alternation (so that load from other processes hits both alike) and print the
best and the median time of each and the speed-up ratios side by side. On a shared machine the
best-of-N ratio is the steadier one (it is the least disturbed run of each).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from facegan.cnn import create_model, fuse_conv_bn


def randomize_bn(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def timed(model: nn.Module, x: torch.Tensor) -> float:
    t = time.perf_counter()
    model(x)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "resnet50", "vgg16-bn"])
    ap.add_argument("--size", type=int, default=224, help="input height = width")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--reps", type=int, default=11, help="timed forwards per version (after 1 warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormals slow CPU convolutions several-fold
    torch.manual_seed(0)
    shape = f"{args.batch}x3x{args.size}x{args.size}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {shape}, {args.reps} timed runs each")
    print(f"{'model':<10} {'BN folded':>9} {'max |diff|':>10} {'rel diff':>8}   {'best ms: unfused':>16} {'fused':>7} "
          f"{'speed-up':>8}   {'median ms: unfused':>18} {'fused':>7} {'speed-up':>8}")
    for name in args.models:
        model = create_model(name).eval()
        randomize_bn(model)
        fused, pairs, _ = fuse_conv_bn(model)
        x = torch.randn(args.batch, 3, args.size, args.size)
        with torch.inference_mode():
            ref = model(x)  # doubles as the warm-up
            diff = (ref - fused(x)).abs().max().item()
            rel = diff / ref.abs().max().item()
            plain, folded = [], []
            for i in range(args.reps):
                # alternate which goes first so that neither always runs in the other's wake
                if i % 2:
                    folded.append(timed(fused, x))
                    plain.append(timed(model, x))
                else:
                    plain.append(timed(model, x))
                    folded.append(timed(fused, x))
        bp, bf = min(plain) * 1e3, min(folded) * 1e3
        mp, mf = statistics.median(plain) * 1e3, statistics.median(folded) * 1e3
        print(f"{name:<10} {len(pairs):>9} {diff:>10.1e} {rel:>8.1e}   {bp:>16.1f} {bf:>7.1f} {bp / bf:>7.2f}x   "
              f"{mp:>18.1f} {mf:>7.1f} {mp / mf:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
