"""``facegan stats SRC -o ref.npz``: FID reference statistics of a set of images."""

from __future__ import annotations

import argparse
import sys

from facegan.config import add_dataclass_arguments, dataclass_from_args
from facegan.errors import FaceganError
from facegan.fid.options import ScorerOptions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stats",
        help="FID reference statistics (mu, sigma of pool3 features) of a set of images",
        description=(
            "Compute mu and sigma of the 2048-d pool3 features of SRC (a folder of images, "
            "searched recursively; a .zip/.tar.gz of images; or a uint8 .npy of shape (N, H, W, 3)) "
            "exactly as pytorch-fid does, streaming (bounded memory for any N). The .npz is "
            "readable by 'python -m pytorch_fid samples/ OUT.npz' and also records N, a hash of "
            "the input images and the Inception weights' checksum: an existing OUT made from the "
            "same images with the same weights is reused, anything else is recomputed. Long "
            "passes save their state in OUT.partial.npz every 2 minutes: after Ctrl-C or a crash, "
            "the same command continues where it stopped."
        ),
    )
    p.add_argument("src", metavar="SRC", help="folder, .zip/.tar(.gz) or uint8 .npy of images")
    p.add_argument("-o", "--out", required=True, metavar="OUT.npz", help="statistics file to write")
    p.add_argument("--force", action="store_true", help="recompute even if OUT is up to date (so does --strict)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dataclass_arguments(p, ScorerOptions)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from facegan.fid.features import FEATURE_DIMS
    from facegan.fid.inception import resolve_weights
    from facegan.fid.resumable import partial_path, resumable_statistics
    from facegan.fid.sources import check_count, is_stats_file, open_images
    from facegan.fid.stats import Stats

    opts = dataclass_from_args(ScorerOptions, args)
    out = Path(args.out)
    if is_stats_file(args.src):
        raise FaceganError(f"{args.src}: already statistics; SRC must be images (folder, archive, .npy)")
    if out.suffix.lower() != ".npz":
        raise FaceganError(f"{out}: the output must be an .npz file")
    images = open_images(args.src)
    check_count(images, images.count)
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
            print(f"{out}: up to date ({old.n} images of {args.src}); --force recomputes")
            return 0
        print(f"{out}: exists but was made from other images or weights: recomputing", file=sys.stderr)
    scorer = opts.scorer(progress=not args.quiet, weights=weights)
    # saves its state beside OUT every 2 minutes: a stopped run continues when rerun
    stats = resumable_statistics(images, scorer, out, strict=opts.strict, workers=opts.workers,
                                 progress=not args.quiet)
    stats.save(out)
    partial_path(out).unlink(missing_ok=True)
    skipped = f", {len(images.skipped)} skipped" if images.skipped else ""
    print(f"{out}: {stats.n} images of {args.src} ({images.kind}{skipped})")
    print(f"weights: {scorer.weights.origin}, sha256 {scorer.weights_sha256[:16]}")
    for name, why in images.skipped[:5]:
        print(f"facegan: warning: skipped {name}: {why}", file=sys.stderr)
    return 0
