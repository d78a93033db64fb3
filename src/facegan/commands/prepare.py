"""``facegan prepare SRC -o data/celeba64.npy``: photos -> the uint8 64x64 training cache."""

from __future__ import annotations

import argparse
import sys

from facegan.config import add_dataclass_arguments, dataclass_from_args


def register(sub: argparse._SubParsersAction) -> None:
    from facegan.data import PrepareConfig  # numpy only: cheap

    p = sub.add_parser(
        "prepare",
        usage="facegan prepare SRC -o OUT.npy [--split {all,train,valid,test}] [options]",
        help="photos -> uint8 (N, 64, 64, 3) .npy training cache + JSON sidecar",
        description=(
            "Decode every photo once with the brief's preprocessing (torchvision Resize(64) then "
            "CenterCrop(64), byte-identical) into a memory-mappable uint8 .npy of shape "
            "(N, 64, 64, 3), plus a JSON sidecar (source, file-list hash, count, skipped files). "
            "SRC: the CelebA layout (celeba/img_align_celeba/ + list_eval_partition.txt), any "
            "folder of images (recursive, sorted; only regular files are read) or a .zip/.tar(.gz) "
            "of images (a tar is read once, in its own order, into an uncompressed copy in "
            "OUT.partial/, deleted at the end). Uses all cores. After Ctrl-C, a kill or a full disk, the same command "
            "resumes from OUT.partial/: a finished chunk is reused when the file list and options "
            "are the same and the sha256 of each of its input files, and of its own output, still "
            "match what it recorded (hashed again on resume, a few seconds for all of CelebA; "
            "sizes and modification times are not trusted)."
        ),
        epilog="example: facegan prepare path/to/celeba -o data/celeba64.npy",
    )
    p.add_argument("src", metavar="SRC", help="CelebA root, folder of images, or .zip/.tar(.gz)")
    p.add_argument("-o", "--out", required=True, metavar="OUT.npy",
                   help="the cache to write (required; its sidecar is OUT.json)")
    p.add_argument("--download", action="store_true",
                   help="first fetch CelebA into SRC with torchvision's downloader (needs internet "
                        "and the gdown package; explains what to do when it fails)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dataclass_arguments(p, PrepareConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facegan.data import PrepareConfig, download_celeba, prepare

    from facegan.datapaths import check_photo_source

    cfg = dataclass_from_args(PrepareConfig, args)
    if not args.download:
        check_photo_source(args.src)
    if args.download:
        print(f"prepare: downloading CelebA into {args.src} with torchvision ...", file=sys.stderr)
        download_celeba(args.src)
    report = prepare(args.src, args.out, cfg, progress=not args.quiet,
                     log=lambda msg: print(msg, file=sys.stderr))
    rate = report.listed / report.seconds if report.seconds > 0 else float("inf")
    print(f"wrote {report.out}: {report.count} images of {cfg.size}x{cfg.size} "
          f"({report.count * cfg.size * cfg.size * 3 / 1e6:.1f} MB) in {report.seconds:.1f} s "
          f"({rate:.0f} images/s); sidecar {report.sidecar}")
    if report.skipped:
        shown = "\n  ".join(f"{n}: {r}" for n, r in report.skipped[:10])
        more = f"\n  ... and {len(report.skipped) - 10} more" if len(report.skipped) > 10 else ""
        print(f"skipped {len(report.skipped)} files (listed in the sidecar):\n  {shown}{more}")
    if report.upsampled:
        print(f"upsampled {len(report.upsampled)} images smaller than {cfg.size}x{cfg.size} "
              "(listed in the sidecar; --small skip to leave them out)")
    if report.converted:
        print("converted to RGB: " + ", ".join(f"{n} {m}" for m, n in sorted(report.converted.items())))
    return 0
