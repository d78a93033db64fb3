"""``facegan stats SRC -o ref.npz``: FID reference statistics of a set of images (and their floor)."""

from __future__ import annotations

import argparse
import sys

from facegan.config import add_dataclass_arguments, dataclass_from_args
from facegan.errors import FaceganError
from facegan.fid.options import FloorOptions, ScorerOptions, add_scorer_arguments

#: The sample size ``stats --floor`` measures the floor at unless told: the brief's 1,000 images.
DEFAULT_FLOOR_N = 1000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stats",
        usage="facegan stats SRC -o OUT.npz [--floor] [options]",
        help="FID reference statistics (mu, sigma of pool3 features) of a set of images",
        description=(
            "Compute mu and sigma of the 2048-d pool3 features of SRC (a folder of images, "
            "searched recursively; a .zip/.tar.gz of images; or a uint8 .npy of shape (N, H, W, 3)) "
            "exactly as pytorch-fid does, streaming (bounded memory for any N). The .npz is "
            "readable by 'python -m pytorch_fid samples/ OUT.npz' and also records N, a hash of "
            "the input images and the Inception weights' checksum: an existing OUT made from the "
            "same images with the same weights is reused, anything else is recomputed. With "
            "--floor it also records the real-data floor (what --floor-n of these photos score "
            "against the others), which 'facegan fid' and 'facegan grade' print beside every "
            "score. Long passes save their state in OUT.partial.npz every 2 minutes: after Ctrl-C "
            "or a crash, the same command continues where it stopped."
        ),
        epilog="example: facegan stats data/celeba64.npy -o ref.npz --floor",
    )
    p.add_argument("src", metavar="SRC", help="folder, .zip/.tar(.gz) or uint8 .npy of images")
    p.add_argument("-o", "--out", required=True, metavar="OUT.npz", help="statistics file to write (required)")
    p.add_argument("--floor", action="store_true",
                   help=f"also measure and record the real-data floor: the FID of --floor-n images "
                        f"(default {DEFAULT_FLOOR_N}) of SRC against the statistics of the others, over "
                        "--floor-splits disjoint splits (keeps their features: 8 KB per image)")
    p.add_argument("--force", action="store_true", help="recompute even if OUT is up to date (so does --strict)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_scorer_arguments(p)
    add_dataclass_arguments(p, FloorOptions)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facegan.devices import pick_device
    from facegan.runtime import configure_torch
    from facegan.fid.features import FEATURE_DIMS
    from facegan.fid.floor import Floor, floor_keep, real_floor
    from facegan.fid.inception import resolve_weights
    from facegan.fid.resumable import partial_path, resumable_summary
    from facegan.fid.sources import check_count, is_stats_file, open_images
    from facegan.fid.stats import Stats
    from facegan.fileio import check_output_file, clean_stale_temps

    opts = dataclass_from_args(ScorerOptions, args)
    fl = dataclass_from_args(FloorOptions, args)
    floor_n = fl.floor_n or DEFAULT_FLOOR_N
    # "--device cuda" without a GPU: said before any work; then the process's settings, once
    configure_torch(pick_device(opts.device), opts.threads, scoring=True)
    if is_stats_file(args.src):
        raise FaceganError(f"{args.src}: already statistics; SRC must be images (folder, archive, .npy)")
    out = check_output_file(args.out, suffix=".npz")
    for name in (out.name, partial_path(out).name):  # leftovers of a killed run (SIGKILL)
        clean_stale_temps(out.parent, name)
    images = open_images(args.src)
    check_count(images, images.count)
    if args.floor and images.count < floor_n + 2:
        raise FaceganError(f"{args.src}: {images.count} images: too few for a floor at {floor_n} samples "
                           f"(needs at least {floor_n + 2}; --floor-n sets the sample size)")
    weights = resolve_weights(opts.weights)
    if out.exists() and not args.force and not opts.strict:  # --strict re-reads every file
        try:
            old = Stats.load(out, dims=FEATURE_DIMS)
        except FaceganError:
            old = None
        if (  # the weights first: a mismatch there saves hashing every input file
            old is not None
            and old.weights_sha256 == weights.sha256
            and old.input_sha256 == images.sha256
        ):
            if not args.floor or old.floor_at(floor_n) is not None:
                print(f"{out}: up to date ({old.n} images of {args.src}); --force recomputes")
                return 0
            print(f"{out}: records no floor at {floor_n} samples: recomputing with it", file=sys.stderr)
        else:
            print(f"{out}: exists but was made from other images or weights: recomputing", file=sys.stderr)
    scorer = opts.scorer(progress=not args.quiet, weights=weights)
    keep = floor_keep(floor_n, fl.floor_splits) if args.floor else 0
    # saves its state beside OUT every 2 minutes: a stopped run continues when rerun
    stats, summary = resumable_summary(images, scorer, out, keep=keep, seed=fl.seed, strict=opts.strict,
                                       workers=opts.workers, progress=not args.quiet)
    if args.floor:
        stats.floor = real_floor(summary, floor_n, fl.floor_splits).to_dict()
    stats.save(out)
    partial_path(out).unlink(missing_ok=True)
    skipped = f", {len(images.skipped)} skipped" if images.skipped else ""
    print(f"{out}: {stats.n} images of {args.src} ({images.kind}{skipped})")
    if stats.floor:
        print(f"floor: {Floor.from_dict(stats.floor).describe()} (recorded in {out.name})")
    print(f"weights: {scorer.weights.origin}, sha256 {scorer.weights_sha256[:16]}")
    for name, why in images.skipped[:5]:
        print(f"facegan: warning: skipped {name}: {why}", file=sys.stderr)
    return 0
