"""One side of ``train_speed.py --against``: facegan's training step, timed on request, in a
child process that imports whichever facegan its ``PYTHONPATH`` names.

Run as ``python bench/_speed_child.py CACHE.npy CONFIG_JSON``; it builds its side with the API
the imported facegan has — the method object (``facegan.train.methods.build_training``) when
present, else the older ``facegan.train.loop.build_parts`` + ``Parts.step(next_real,
next_noise)`` + ``update_ema`` (so a commit from before the method seam, e.g. 2027caf, works) —
then answers lines on stdin:

    warmup N     -> "ok"                      N untimed steps
    run SECONDS  -> "IMAGES ELAPSED_S"        steps until SECONDS have passed
    quit

Only one side runs at a time: the other waits on its stdin, using no CPU. Imports nothing from
``bench/`` (``_common`` would put the current tree's ``src`` first on the path).
"""

from __future__ import annotations

import json
import sys
import time


def build(cache: str, over: dict):
    """(step function, images per step, one line naming what was built)."""
    import torch

    import facegan
    from facegan.images import load_uint8_array
    from facegan.runtime import configure_torch
    from facegan.train.config import TrainConfig
    from facegan.train.distributed import DistInfo

    device = torch.device(over.get("device", "cpu"))
    configure_torch(device)  # as `facegan train` does at its entry
    if over.get("threads"):
        torch.set_num_threads(int(over["threads"]))
    cfg = TrainConfig(data=cache, out="unused", kimg=1, **over)
    images = load_uint8_array(cache)
    info = DistInfo(device=device)
    try:
        from facegan.train.methods import build_training
    except ImportError:
        build_training = None
    if build_training is not None:  # the method seam: the glue (noise, EMA, images per step) is the method's
        method, loader = build_training(cfg, images, info)

        def step() -> None:
            method.step(lambda: next(loader))

        return step, method.images_per_step, f"{facegan.__file__}: method {cfg.method}: {method.describe()}"
    from facegan.train.ema import ema_beta, update_ema
    from facegan.train.loop import build_parts

    parts = build_parts(cfg, images, info)
    per_step = cfg.batch * cfg.n_dis
    nimg = [0]

    def noise() -> torch.Tensor:
        return torch.randn(parts.loader.batch_size, cfg.z_dim, device=device, generator=parts.noise)

    def step() -> None:
        parts.step(lambda: next(parts.loader), noise)
        nimg[0] += per_step
        if parts.G_ema is not None:
            update_ema(parts.G_ema, parts.G, ema_beta(cfg.batch, nimg[0], cfg.ema_kimg, cfg.ema_rampup))

    return step, per_step, f"{facegan.__file__}: build_parts ({parts.precision})"


def main() -> None:
    cache, over = sys.argv[1], json.loads(sys.argv[2])
    step, per_step, desc = build(cache, over)
    import torch

    sync = torch.cuda.synchronize if over.get("device", "cpu").startswith("cuda") else (lambda: None)
    print(f"ready {desc}", flush=True)
    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd == "warmup":
            for _ in range(int(arg[0])):
                step()
            sync()
            print("ok", flush=True)
        elif cmd == "run":
            seconds, done = float(arg[0]), 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                step()
                sync()
                done += per_step
            print(f"{done} {time.perf_counter() - t0}", flush=True)
        elif cmd == "quit":
            break


if __name__ == "__main__":
    main()
