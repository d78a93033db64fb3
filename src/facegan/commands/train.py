"""``facegan train``: train a GAN on the uint8 cache; every option comes from ``TrainConfig``."""

from __future__ import annotations

import argparse
import os
import sys

from facegan.errors import FaceganError

EPILOG = """\
examples:
  facegan train --data data/celeba64.npy --out runs/first --minutes 60
  facegan train --out runs/first --resume --minutes 90      # continue, now up to 90 minutes in all
  torchrun --nproc_per_node=2 -m facegan train --data data/celeba64.npy --out runs/ddp --kimg 500

The run folder gets config.json, stats.jsonl (one line per tick), last.pt (every few minutes, at
the end and on Ctrl-C/SIGTERM), best.pt (best FID, with --ref), grid-real.png, grid-*.png and
curves.png. Exit status: 0 when finished, 128+signal when stopped by a signal (checkpoint written),
2 for a problem with the input or a NaN/inf loss.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from facegan.config import add_dataclass_arguments
    from facegan.train.config import TrainConfig

    p = sub.add_parser(
        "train",
        help="train a DCGAN (or another registered model) on a prepared image cache",
        description="Train a GAN on the uint8 (N, H, W, 3) cache written by 'facegan prepare'. "
        "Give the length as --kimg N (thousands of images) or --minutes M.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt (options given now override the saved "
                   "ones, except those that shape the models or the data order)")
    add_dataclass_arguments(p, TrainConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facegan.config import dataclass_from_args, given_fields
    from facegan.train import TrainConfig, config_for_resume, training_loop

    if args.resume:
        given = given_fields(TrainConfig, args)
        if "out" not in given:
            raise FaceganError("--resume needs --out, the run folder to continue")
        cfg = config_for_resume(given.pop("out"), given)
    else:
        cfg = dataclass_from_args(TrainConfig, args)
    under_torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    result = training_loop(cfg, resume=args.resume, destroy_process_group=not under_torchrun)
    code = 0 if result.status == "done" else 128 + int(result.signal or 2)
    if under_torchrun:
        # Everything is written and every rank has passed the final barrier: leave without
        # tearing gloo down (see facegan.train.distributed.teardown for why).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
