"""``facegan export``: a training checkpoint's generator alone, small enough to share."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        usage="facegan export CKPT -o OUT.pt [--which ema|g]",
        help="write a checkpoint's EMA generator alone (a small file 'facegan sample' reads)",
        description="Write the generator of a 'facegan train' checkpoint (or run folder: best.pt, else "
        "last.pt) alone: its config and weights, without D, the optimisers or the random states. "
        "'facegan sample' accepts the file like a checkpoint.",
        epilog="example: facegan export runs/first -o g.pt && facegan sample g.pt -n 1000 -o samples/",
    )
    p.add_argument("ckpt", help="a checkpoint written by 'facegan train', or its run folder")
    p.add_argument("-o", "--out", required=True, help="the file to write (e.g. g.pt)")
    p.add_argument("--which", choices=("ema", "g"), default="ema",
                   help="the moving-average generator (default) or the raw one")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from facegan.errors import FaceganError
    from facegan.train.checkpoint import export_generator, resolve_path

    out = Path(args.out)
    if out.is_dir():
        raise FaceganError(f"{out}: is a folder; -o takes the file to write, e.g. {out / 'g.pt'}")
    src = resolve_path(args.ckpt)
    path = export_generator(src, out, args.which)
    print(f"facegan export: {args.which} generator of {src} -> {path} "
          f"({path.stat().st_size / 1e6:.2f} MB, was {src.stat().st_size / 1e6:.2f} MB)", flush=True)
    return 0
