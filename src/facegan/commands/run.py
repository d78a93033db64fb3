"""``facegan run``: the whole brief in one command (see :mod:`facegan.pipeline`)."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  facegan run --data path/to/celeba --out runs/first --student 20251234
  facegan run --data photos.zip --out runs/quick --minutes 10 --student 20251234
  facegan run --out runs/first                  # CelebA in ./data/celeba (downloaded when online)

Run the same command again to continue: the cache and reference are reused, training resumes
from last.pt, and the samples, score and archive are made anew. The steps one by one are
'facegan prepare', 'facegan train', 'facegan sample', 'facegan fid' and 'facegan pack'.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from facegan.config import add_dataclass_arguments
    from facegan.pipeline import RunConfig

    p = sub.add_parser(
        "run",
        usage="facegan run --data PHOTOS --out RUN --student NUMBER [--minutes M | --kimg N]\n"
              "                   [--preset NAME] [options]",
        help="the whole path: prepare -> train -> sample -> score -> pack, resumable",
        description="Prepare the photos, train a DCGAN, sample 1,000 faces, score them (FID@1k beside\n"
        "the real-data floor and the brief's target) and pack <student>.tar.gz, all into --out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_arguments(p, RunConfig, exclude=("n",))
    # the same spelling as 'facegan sample' (-n/--num); --n, the earlier one, still works
    p.add_argument("-n", "--num", "--n", dest="n", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="samples to generate, score and pack (the brief: 1,000) (default: 1000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facegan.config import dataclass_from_args
    from facegan.pipeline import RunConfig, run_pipeline
    from facegan.runtime import configure_torch
    from facegan.train.distributed import pick_device

    cfg = dataclass_from_args(RunConfig, args)
    configure_torch(pick_device(cfg.device), cfg.threads, scoring=True)  # it trains, samples and scores
    run_pipeline(cfg)
    return 0
