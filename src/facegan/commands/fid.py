"""``facegan fid A B``: FID (and KID, and the real-data floor) between two sets of images."""

from __future__ import annotations

import argparse
import json
import sys

from facegan.config import add_dataclass_arguments, dataclass_from_args
from facegan.fid.options import CompareOptions, ScorerOptions, add_scorer_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fid",
        usage="facegan fid A B [--floor REAL_SRC] [--train-images NPY] [--json] [options]",
        help="FID and KID between two sets of images (or .npz statistics)",
        description=(
            "FID between A and B, each a folder of images (recursive), a .zip/.tar.gz of images, "
            "a uint8 .npy (N, H, W, 3) or .npz statistics (facegan stats or pytorch-fid). Same "
            "numbers as 'python -m pytorch_fid A B'. Also KID (unbiased, mean ± std over subsets; "
            "needs images on both sides) and the number of images on each side; with --floor REAL, "
            "the FID that real photos get at the same sample size (without it, the floor recorded "
            "in a reference made by 'facegan stats --floor' is shown); with --train-images, how many "
            "of A are (near-)copies of the training photos. Warns when a side has fewer "
            "than 2,048 images or images that are not 64x64."
        ),
        epilog="example: facegan fid samples/ ref.npz --floor data/celeba64.npy --train-images data/celeba64.npy",
    )
    p.add_argument("a", metavar="A", help="the images being judged (e.g. samples/)")
    p.add_argument("b", metavar="B", help="the reference (images or .npz statistics)")
    p.add_argument(
        "--floor",
        metavar="REAL_SRC",
        help="real images (the reference photos): also report the FID of |A| of them against the "
        "statistics of the others, over disjoint splits (one pass; reused when REAL_SRC is B)",
    )
    p.add_argument(
        "--train-images",
        metavar="NPY",
        help="the training photos as a uint8 .npy ('facegan prepare' output): also count the images "
        "of A that are (near-)copies of them — exact, mirrored, re-encoded or shifted a pixel or two "
        "(checked in the pass that scores A; A must hold images of the same size)",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_scorer_arguments(p)
    add_dataclass_arguments(p, CompareOptions)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facegan.devices import pick_device
    from facegan.runtime import configure_torch
    from facegan.fid.comparison import compare

    scorer_opts = dataclass_from_args(ScorerOptions, args)
    opts = dataclass_from_args(CompareOptions, args)
    configure_torch(pick_device(scorer_opts.device), scorer_opts.threads, scoring=True)  # the process's settings, once
    copy_index = None
    if args.train_images:
        def copy_index():  # indexed once the inputs check out, like the scorer
            from facegan.copycheck import CopyIndex

            return CopyIndex.from_file(args.train_images, progress=not args.quiet)
    result = compare(
        args.a,
        args.b,
        lambda: scorer_opts.scorer(progress=not args.quiet),  # made once the inputs check out
        kid_subsets=opts.kid_subsets,
        kid_subset_size=opts.kid_subset_size,
        floor_src=args.floor,
        floor_splits=opts.floor_splits,
        floor_n=opts.floor_n,
        strict=scorer_opts.strict,
        seed=opts.seed,
        workers=scorer_opts.workers,
        copy_index=copy_index,
    )
    for w in result.warnings:
        print(f"facegan: warning: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"FID    {result.fid:.6f}")
    if result.kid is not None:
        k = result.kid
        print(f"KID    {k['mean']:.6f} ± {k['std']:.6f}  ({k['subsets']} subsets of {k['subset_size']})")
    else:
        print(f"KID    n/a ({result.kid_note})")
    print(f"n      A: {result.a.stats.size_text('sample set')} ({args.a})   "
          f"B: {result.b.stats.size_text()} ({args.b})")
    if result.floor is not None:
        print(f"floor  {result.floor.describe()} ({result.floor_origin})")
    else:
        print("floor  unknown: --floor REAL measures what real photos score at this size "
              "(or make the reference with 'facegan stats --floor')")
    if result.copies is not None:
        print(f"copies {result.copies.describe()}")
    return 0
