"""``facegan sample``: N PNGs from a training checkpoint, image i from seed i."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from facegan.devices import DEVICE_METAVAR, device_arg

    p = sub.add_parser(
        "sample",
        usage="facegan sample CKPT -o OUT_DIR [-n 1000] [options]",
        help="generate N PNG faces from a checkpoint (image i from seed i)",
        description="Write N 64x64 RGB PNGs 0000.png, 0001.png, ... made by the model of a "
        "'facegan train' checkpoint (a GAN's generator, or whatever its training method samples with); image i comes from seed i, so any image can be made again alone.",
        epilog="example: facegan sample runs/first/best.pt -n 1000 -o samples/",
    )
    p.add_argument("ckpt", help="a checkpoint written by 'facegan train' (or its run folder: best.pt, else last.pt)")
    p.add_argument("-n", "--num", "--n", dest="num", type=int, default=1000, metavar="N",
                   help="number of images (default: 1000; --n as in 'facegan run')")
    p.add_argument("-o", "--out", required=True, help="folder for the PNGs (created; must hold no images)")
    p.add_argument("--which", choices=("ema", "g"), default="ema",
                   help="the moving-average weights (default) or the raw ones (a GAN: its EMA generator or G)")
    p.add_argument("--first-seed", type=int, default=0, help="seed of the first image (default: 0)")
    p.add_argument("--batch", type=int, default=250, help="images per forward pass (default: 250)")
    p.add_argument("--device", type=device_arg, metavar=DEVICE_METAVAR, default="auto", help="default: auto")
    p.add_argument("--overwrite", action="store_true", help="replace images of the same names in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from facegan.sample import sample_to_folder
    from facegan.train.checkpoint import resolve_path
    from facegan.train.distributed import pick_device

    t = time.perf_counter()
    ckpt = resolve_path(args.ckpt)  # a run folder: its best.pt, else last.pt
    which = "moving-average (EMA)" if args.which == "ema" else "raw"
    print(f"facegan sample: {args.num} images from the {which} weights of {ckpt} -> {args.out}", flush=True)
    paths = sample_to_folder(
        ckpt, args.out, args.num, which=args.which, device=pick_device(args.device),
        first_seed=args.first_seed, batch_size=args.batch, overwrite=args.overwrite,
    )
    print(f"facegan sample: wrote {len(paths)} images to {args.out} ({paths[0].name} ... {paths[-1].name}) "
          f"from {ckpt} in {time.perf_counter() - t:.1f} s", flush=True)
    return 0
