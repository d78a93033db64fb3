"""``facegan train``: train a GAN (or another registered method) on the uint8 cache; every option
comes from ``TrainConfig``, the networks' ``--g.``/``--d.`` and the methods' ``--m.`` registries."""

from __future__ import annotations

import argparse
import os
import sys

EPILOG = """\
examples:
  facegan train --data data/celeba64.npy --out runs/first --minutes 60
  facegan train --data data/celeba64.npy --out runs/narrow --kimg 500 --g.ngf 32 --d.ndf 32
  facegan train --data data/celeba64.npy --out runs/gpu --minutes 8 --preset gpu
  facegan train --out runs/first --resume --minutes 90      # continue, now up to 90 minutes in all
  torchrun --nproc_per_node=2 -m facegan train --data data/celeba64.npy --out runs/ddp --kimg 500

The run folder gets config.json, stats.jsonl (one line per tick), last.pt (every few minutes, at
the end and on Ctrl-C/SIGTERM), best.pt (best FID, with --ref), grid-real.png, grid-*.png and
curves.png. Exit status: 0 when finished, 128+signal when stopped by a signal (checkpoint written),
2 for a problem with the input or a NaN/inf loss.
"""


#: What ``facegan train --help`` shows; ``--help-all`` adds the other ~45 (optimiser, EMA,
#: augmentation, speed, logging, the networks' own).
BRIEF = ("data", "out", "kimg", "minutes", "preset", "method", "arch", "ref", "device", "threads", "seed", "batch")


def register(sub: argparse._SubParsersAction) -> None:
    from facegan.config import HelpAll, add_dataclass_arguments
    from facegan.train.config import TrainConfig
    from facegan.train.presets import describe

    p = sub.add_parser(
        "train",
        usage="facegan train --data CACHE.npy --out RUN (--kimg N | --minutes M) [--preset NAME] [options]\n"
              "       facegan train --out RUN --resume [--kimg N | --minutes M] [options]",
        help="train a DCGAN (or another registered model or method) on a prepared image cache",
        description="Train a GAN on the uint8 (N, H, W, 3) cache written by 'facegan prepare'.\n"
        "Give the length as --kimg N (thousands of images) or --minutes M. The common options are\n"
        "below; 'facegan train --help-all' lists every one (optimiser, EMA, augmentation, speed,\n"
        "logging, the networks' own --g.NAME / --d.NAME).",
        epilog=f"presets (--preset NAME; options given beside it win):\n{describe(width=100)}\n\n{EPILOG}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--help-all", action=HelpAll)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt (options given now override the saved "
                   "ones, except those that shape the models or the data order)")
    add_dataclass_arguments(p, TrainConfig, exclude=("g", "d", "method_options"), brief=BRIEF)
    p.set_defaults(func=run)


def add_late_arguments(p: argparse.ArgumentParser) -> None:
    """The networks' own options, ``--g.NAME`` and ``--d.NAME``, and the methods' ``--m.NAME``:
    added only when ``train`` is the command being parsed (they come from the registries, read
    now: a method or model registered before the call shows up)."""
    add_model_arguments(p)
    add_method_arguments(p)


def add_method_arguments(p: argparse.ArgumentParser) -> None:
    """``--m.NAME`` for every field of every registered method's options (shown by --help)."""
    from facegan.config import add_union_arguments
    from facegan.train.methods import get_method, method_names

    names = method_names()
    for action in p._actions:  # --method's help names what is registered now
        if action.dest == "method":
            action.help = f"{action.help} [registered: {', '.join(names)}]"
    classes = {name: cls for name in names if (cls := get_method(name).config) is not None}
    if classes:
        group = p.add_argument_group("method options (--m.NAME; which apply depends on --method, the methods' "
                                     "defaults in brackets)")
        add_union_arguments(group, classes, prefix="m.")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--g.NAME`` / ``--d.NAME`` for every field of every registered network's config."""
    from facegan.config import add_union_arguments
    from facegan.models.registry import config_class, list_models

    for kind, prefix, what in (("generator", "g.", "generator"), ("discriminator", "d.", "discriminator")):
        group = p.add_argument_group(
            f"{what} options (--{prefix}NAME; which apply depends on --arch, the networks' defaults in brackets)")
        classes = {name: config_class(kind, name) for name in list_models(kind)}
        add_union_arguments(group, classes, prefix=prefix, exclude=("resolution",), hidden=True)


def model_fields(args: argparse.Namespace) -> dict[str, dict]:
    """``{"g": {...}, "d": {...}, "method_options": {...}}``: the network and method options given
    on the command line."""
    from facegan.config import prefixed_fields

    given = {net: fields for net in ("g", "d") if (fields := prefixed_fields(args, net + "."))}
    if fields := prefixed_fields(args, "m."):
        given["method_options"] = fields
    return given


def run(args: argparse.Namespace) -> int:
    from facegan.config import given_fields
    from facegan.runlock import run_lock
    from facegan.runtime import configure_torch
    from facegan.train import TrainConfig
    from facegan.train.distributed import pick_device
    from facegan.train.entry import resolve_config, run_training

    given = {**given_fields(TrainConfig, args), **model_fields(args)}
    cfg = resolve_config(given, resume=args.resume)
    configure_torch(pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0"))), cfg.threads)
    under_torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    with run_lock(cfg.out, enabled=int(os.environ.get("RANK", "0")) == 0):  # before the speed check: a second run stops at once
        result = run_training(cfg, resume=args.resume, destroy_process_group=not under_torchrun)
    code = 0 if result.status == "done" else 128 + int(result.signal or 2)
    if under_torchrun:
        # Everything is written and every rank has passed the final barrier: leave without
        # tearing gloo down (see facegan.train.distributed.teardown for why).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
