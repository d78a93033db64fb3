"""``facegan pack samples/ -o 20251234.tar.gz``: the checked, verified submission archive."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pack",
        usage="facegan pack SAMPLES_DIR -o STUDENT_NUMBER.tar.gz [options]\n       facegan pack --verify ARCHIVE",
        help="samples/ -> <student number>.tar.gz (checked, written atomically, verified)",
        description=(
            "Check that SAMPLES holds exactly --count decodable --size x --size RGB images with "
            "no two identical, write them (bytes unchanged) into -o <student number>.tar.gz "
            "under a folder named after the student number, read the archive back to verify "
            "it, and print its size. With --verify ARCHIVE, only check an existing archive."
        ),
    )
    p.add_argument("samples", nargs="?", metavar="SAMPLES",
                   help="folder (or .zip/.tar) of the generated images, e.g. samples/")
    p.add_argument("-o", "--out", metavar="STUDENT_NUMBER.tar.gz",
                   help="the archive to write, named after your student number: 20251234.tar.gz")
    p.add_argument("--verify", metavar="ARCHIVE", help="check an existing archive instead")
    p.add_argument("--count", type=int, default=1000, help="images required (default: 1000)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default: 64)")
    p.add_argument("--flat", action="store_true",
                   help="put the images at the archive's root instead of in a folder named "
                        "after the student number")
    p.set_defaults(func=run)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB ({n:,} bytes)"


def run(args: argparse.Namespace) -> int:
    from facegan.errors import FaceganError
    from facegan.pack import pack, verify

    if args.count < 1 or args.size < 1:
        raise FaceganError("--count and --size must be positive")
    if args.verify:
        if args.samples or args.out:
            raise FaceganError("--verify ARCHIVE takes no SAMPLES and no -o")
        report = verify(args.verify, args.count, args.size)
        for w in report.warnings:
            print(f"facegan: warning: {w}", file=sys.stderr)
        where = f"in {report.prefix}/" if report.prefix else "at the root"
        print(f"{report.archive}: OK: {report.count} images {args.size}x{args.size} {where}, "
              f"{_mb(report.bytes)}")
        return 0
    if not args.samples or not args.out:
        raise FaceganError("usage: facegan pack SAMPLES -o <student number>.tar.gz "
                           "(or facegan pack --verify ARCHIVE)")
    report = pack(args.samples, args.out, count=args.count, size=args.size,
                  layout="flat" if args.flat else "folder")
    for w in report.warnings:
        print(f"facegan: warning: {w}", file=sys.stderr)
    where = f"in folder {report.prefix}/" if report.prefix else "at the root"
    print(f"wrote {report.archive}: {report.count} images {args.size}x{args.size} {where}, "
          f"{_mb(report.bytes)}, read back and verified")
    return 0
