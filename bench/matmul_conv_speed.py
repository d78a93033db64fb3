"""Per layer: PyTorch's conv kernels against ``facegan.models.matmul_conv``, for the DCGAN's shapes.

Times forward + backward (input and weight gradients) of every layer of the brief's
DCGAN at batch 128, both ways, in the same run, and prints the ratio — the evidence behind
``--matmul-convs auto`` switching only the layers whose small side is at most 4×4.

    python bench/matmul_conv_speed.py [--dtype bf16|fp32] [--repeats 10] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from facegan.models.matmul_conv import conv2d_mm, conv_transpose2d_mm

# (kind, C_in, C_out, input side, stride, padding): every layer of the DCGAN at 64x64 (4x4 kernels)
LAYERS = [
    ("conv", 3, 64, 64, 2, 1), ("conv", 64, 128, 32, 2, 1), ("conv", 128, 256, 16, 2, 1), ("conv", 256, 512, 8, 2, 1),
    ("conv", 512, 1, 4, 1, 0),
    ("transposed", 100, 512, 1, 1, 0),
    ("transposed", 512, 256, 4, 2, 1), ("transposed", 256, 128, 8, 2, 1), ("transposed", 128, 64, 16, 2, 1),
    ("transposed", 64, 3, 32, 2, 1),
]


def best_ms(fn, repeats: int) -> float:
    """Best of ``repeats`` timings after two warm-up calls (the best is the least disturbed by load)."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, threads {torch.get_num_threads()}, {args.dtype}, "
          f"batch {args.batch}, channels_last, best of {args.repeats}")
    print("\n| layer | map | library fwd+bwd ms | matmul fwd+bwd ms | library / matmul |\n|---|---|---:|---:|---:|")
    gen = torch.Generator().manual_seed(0)
    for kind, c_in, c_out, side, stride, pad in LAYERS:
        x = torch.randn(args.batch, c_in, side, side, generator=gen).to(dtype, memory_format=torch.channels_last)
        w_shape = (c_out, c_in, 4, 4) if kind == "conv" else (c_in, c_out, 4, 4)
        w = (torch.randn(*w_shape, generator=gen) * 0.02).to(dtype, memory_format=torch.channels_last)
        x.requires_grad_(), w.requires_grad_()
        library = F.conv2d if kind == "conv" else F.conv_transpose2d
        ours = conv2d_mm if kind == "conv" else conv_transpose2d_mm
        y = library(x, w, stride=stride, padding=pad)
        g = torch.randn_like(y)

        def step(fn):
            return lambda: torch.autograd.grad(fn(x, w, stride=stride, padding=pad), (x, w), g)

        lib_ms, mm_ms = best_ms(step(library), args.repeats), best_ms(step(ours), args.repeats)
        out_side = y.shape[-1]
        print(f"| {kind} {c_in}→{c_out} | {side}×{side} → {out_side}×{out_side} | {lib_ms:.1f} | {mm_ms:.1f} | "
              f"{lib_ms / mm_ms:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
