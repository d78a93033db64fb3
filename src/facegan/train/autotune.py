"""Speed choices, measured on the machine at hand instead of assumed.

What helps differs between CPUs and with the load: on an Intel Xeon with AMX, bf16 autocast and
the 4x4-map matrix-product convolutions made the DCGAN 4.3x the tutorial recipe; on an AMD EPYC
(AVX512-BF16, no AMX) the matrix products gained nothing; with another process on one of two
cores, 2 threads fell to a fifth of 1 thread's speed. So when ``--precision``,
``--matmul-convs`` and ``--threads`` are left to ``auto``, :func:`tune` times a few real steps of
the run's own model with each candidate (greedily: precision, then the matrix products, then
threads), keeps the fastest, and says what it measured. The answer is cached per machine and
model shape, so a short run or a resume does not pay for it twice. On a GPU only the precision
is a question (among what it runs natively: :func:`facegan.devices.precision_candidates`).

During the run, :class:`ThreadWatch` notices when the speed falls far below what was measured
(the load changed) and tries the other thread count for one tick, keeping whichever is faster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facegan.devices import (Accelerator, accelerator, cpu_name, pick_device, precision_candidates,
                             usable_cpus)
from facegan.fileio import atomic_write_text

#: Images used to time the candidates (a few batches' worth of the run's own photos).
PROBE_IMAGES = 512
#: Seconds of steady steps each candidate gets (after one warm-up step): at least 2 steps, and
#: no more than PROBE_MAX_STEPS (tiny models are timed in a blink); a model so large that one
#: step takes PROBE_SLOW_STEP seconds is timed on that one step (tuning must stay a small cost).
PROBE_SECONDS = 1.5
PROBE_MAX_STEPS = 50
PROBE_SLOW_STEP = 3.0


@dataclass
class Choice:
    """One candidate setting and its measured speed."""

    precision: str
    matmul_convs: str
    threads: int
    img_per_s: float = 0.0

    def describe(self) -> str:
        mm = "matmul convs" if self.matmul_convs == "on" else "library convs"
        return f"{self.precision}, {mm}, {self.threads} thread{'s' * (self.threads > 1)}"


@dataclass
class TuneResult:
    """What :func:`tune` chose, everything it timed, and whether it came from the cache."""

    best: Choice
    tried: list[Choice]
    cached: bool

    def report(self) -> str:
        rows = ", ".join(f"{c.describe()} {c.img_per_s:.0f} img/s" for c in self.tried)
        return (f"speed check ({'cached' if self.cached else 'measured'} on this machine): {rows} "
                f"-> {self.best.describe()}")


def cache_path() -> Path:
    """``speed.json`` in facegan's one cache folder (``$FACEGAN_CACHE``, else ``~/.cache/facegan``)."""
    from facegan.fileio import cache_dir

    return cache_dir() / "speed.json"


def _key(cfg: Any, device_name: str) -> str:
    """Machine and model shape: what the best setting depends on (not the data, not the length)."""
    from facegan.train.config import config_to_dict

    c = config_to_dict(cfg)
    shape = {k: c[k] for k in ("arch", "g", "d", "batch", "resolution", "n_dis", "joint_d", "channels_last", "compile")}
    if c.get("method", "gan") != "gan":  # (absent for the GAN: the keys cached before methods still hold)
        shape["method"], shape["method_options"] = c["method"], c["method_options"]
    shape["r1"] = c["r1_gamma"] > 0
    shape["augment"] = c["augment"]
    # what the user fixed narrows the candidates, so it is part of the question
    shape["asked"] = [c["precision"], c["matmul_convs"], c["threads"]]
    text = json.dumps({"cpu": device_name, "cores": usable_cpus(), "torch": str(torch.__version__), **shape},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def needs_tuning(cfg: Any, device: torch.device) -> bool:
    """True for a CPU run with at least one of the three settings left to auto, and for a GPU run
    whose precision is left to auto (the only one of the three that matters there)."""
    if device.type == "cuda":
        return cfg.precision == "auto"
    return device.type == "cpu" and (cfg.precision == "auto" or cfg.matmul_convs == "auto" or cfg.threads is None)


def _time_candidate(cfg: Any, images: np.ndarray, choice: Choice) -> float:
    """img/s of ``choice`` over a few real steps of a throwaway copy of the run's method: the
    method's own step (:func:`facegan.train.methods.build_training`), as the loop runs it."""
    from facegan.train.distributed import DistInfo
    from facegan.train.methods import build_training

    torch.set_num_threads(choice.threads)
    trial = dataclasses.replace(cfg, precision=choice.precision, matmul_convs=choice.matmul_convs,
                                threads=choice.threads, compile=False)
    device = pick_device(cfg.device)  # the run's own device
    method, loader = build_training(trial, images, DistInfo(device=device))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)  # GPU work is asynchronous
    method.step(lambda: next(loader))  # warm-up: first-call allocations, kernel choice
    sync()
    done, t0 = 0, time.perf_counter()
    while True:
        method.step(lambda: next(loader))
        sync()
        done += 1
        spent = time.perf_counter() - t0
        if (done >= 2 and spent >= PROBE_SECONDS) or done >= PROBE_MAX_STEPS or spent >= PROBE_SLOW_STEP:
            break
    return done * method.images_per_step / (time.perf_counter() - t0)


def tune(cfg: Any, images: np.ndarray, *, use_cache: bool = True,
         timer: Callable[[Any, np.ndarray, Choice], float] = _time_candidate,
         acc: Accelerator | None = None) -> TuneResult:
    """Measure the candidates for the ``auto`` settings of a run of ``cfg`` and pick the fastest.

    Greedy, in the order the effects are largest: precision (only what the device runs natively:
    :func:`facegan.devices.precision_candidates`), then, on a CPU, the matrix-product
    convolutions, then threads (1 vs one per usable core). Settings the user fixed are not tried.
    ``acc`` fakes the hardware in tests (default: asked of ``cfg.device``). Global random state is
    saved and restored, so a run that tunes trains exactly like one that does not.
    """
    if acc is None:
        acc = accelerator(pick_device(cfg.device))
    key = _key(cfg, acc.name)
    path = cache_path()
    if use_cache:
        try:
            hit = json.loads(path.read_text()).get(key)
        except (OSError, ValueError):
            hit = None
        if hit:
            return TuneResult(Choice(**hit["best"]), [Choice(**c) for c in hit["tried"]], cached=True)
    cores = usable_cpus()
    threads_before = torch.get_num_threads()
    probe = np.asarray(images[: max(PROBE_IMAGES, cfg.batch)])
    precisions = precision_candidates(cfg.precision, acc)
    gpu = acc.kind == "cuda"
    if gpu:  # the 4x4-map matrix products and the thread count are CPU questions
        matmuls = ["on" if cfg.matmul_convs == "on" else "off"]
        threads = [cfg.threads or cores]
    else:
        matmuls = [cfg.matmul_convs] if cfg.matmul_convs != "auto" else ["on", "off"]
        threads = [cfg.threads] if cfg.threads is not None else sorted({cores, 1}, reverse=True)
    rng = _save_rng()
    tried: list[Choice] = []

    def measure(c: Choice) -> Choice:
        for t in tried:
            if (t.precision, t.matmul_convs, t.threads) == (c.precision, c.matmul_convs, c.threads):
                return t
        c.img_per_s = timer(cfg, probe, c)
        tried.append(c)
        return c

    try:
        best = max((measure(Choice(p, matmuls[0], threads[0])) for p in precisions), key=lambda c: c.img_per_s)
        best = max((measure(Choice(best.precision, m, threads[0])) for m in matmuls), key=lambda c: c.img_per_s)
        best = max((measure(Choice(best.precision, best.matmul_convs, t)) for t in threads), key=lambda c: c.img_per_s)
    finally:
        _restore_rng(rng)
        torch.set_num_threads(threads_before)
    result = TuneResult(best, tried, cached=False)
    if use_cache:
        _store(path, key, result)
    return result


def apply(cfg: Any, result: TuneResult) -> Any:
    """``cfg`` with the chosen settings in place of ``auto`` (what the run then records)."""
    b = result.best
    return dataclasses.replace(cfg, precision=b.precision, matmul_convs=b.matmul_convs, threads=b.threads)


def _store(path: Path, key: str, result: TuneResult) -> None:
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    table[key] = {"best": dataclasses.asdict(result.best), "tried": [dataclasses.asdict(c) for c in result.tried],
                  "cpu": cpu_name(), "cores": usable_cpus(), "when": time.strftime("%Y-%m-%d %H:%M")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(table, indent=1))
    except OSError:
        pass  # a read-only home: measuring again next time is the only cost


def _save_rng() -> tuple:
    import random

    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _restore_rng(state: tuple) -> None:
    import random

    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])


class ThreadWatch:
    """Re-checks the thread count when the speed falls far below what was measured.

    After ``patience`` ticks below ``drop`` × the expected rate, it switches to the other thread
    count for one tick (:meth:`after_tick` returns the count to set), then keeps whichever of
    the two ran faster and expects that speed from then on.
    """

    def __init__(self, expected: float, threads: int, cores: int | None = None, *, drop: float = 0.5,
                 patience: int = 2):
        self.expected, self.threads = expected, threads
        self.cores = cores or usable_cpus()
        self.drop, self.patience = drop, patience
        self._slow = 0
        self._trial: tuple[int, float] | None = None  # (threads before the trial, their rate)

    def after_tick(self, rate: float) -> tuple[int, str] | None:
        """Feed one tick's img/s; returns (threads to use from now, why) when something changes."""
        if self._trial is not None:
            before, before_rate = self._trial
            self._trial = None
            if rate >= before_rate:
                self.expected = rate
                return self.threads, f"kept {self.threads} thread(s): {rate:.0f} img/s vs {before_rate:.0f}"
            tried, self.threads, self.expected = self.threads, before, before_rate
            return before, f"{tried} thread(s) ran {rate:.0f} img/s, not faster: back to {before}"
        if self.cores < 2 or rate >= self.drop * self.expected:
            self._slow = 0
            return None
        self._slow += 1
        if self._slow < self.patience:
            return None
        self._slow = 0
        other = 1 if self.threads > 1 else self.cores
        self._trial = (self.threads, rate)
        self.threads = other
        return other, (f"speed fell to {rate:.0f} img/s (measured {self.expected:.0f}): the machine is busier; "
                       f"trying {other} thread(s) for one tick")


def tune_run(cfg: Any, log: Callable[[str], None] | None = print) -> TuneResult | None:
    """At a command's entry: tune a CPU run whose speed settings are left to auto (not under
    torchrun, where the ranks would have to agree); None when there is nothing to tune.

    ``log``: where it says what it times and how long that takes (None: silent). A Ctrl-C
    during the check ends it at once (:func:`facegan.interrupts.phase`): nothing is saved yet.
    """
    from facegan import interrupts
    from facegan.datapaths import check_train_data
    from facegan.images import load_uint8_array

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or not needs_tuning(cfg, pick_device(cfg.device)):
        return None
    check_train_data(cfg.data)
    timer = _time_candidate if log is None else _announcing(log)
    with interrupts.phase("speed check"):
        return tune(cfg, load_uint8_array(cfg.data), timer=timer)


def _announcing(log: Callable[[str], None]) -> Callable[[Any, np.ndarray, Choice], float]:
    """:func:`_time_candidate` that says what it times (the first time: what the check is)."""
    said = []

    def timer(cfg: Any, images: np.ndarray, choice: Choice) -> float:
        if not said:
            said.append(True)
            log("speed check: a warm-up step + ~2 s of steps for each setting tried (at most 4), about "
                f"{PROBE_SECONDS + 1:.0f}-{2 * PROBE_SLOW_STEP:.0f} s each\n"
                "  (two steps when one step is slower); kept for this machine, so only the first run pays; "
                "Ctrl-C stops")
        t = time.perf_counter()
        rate = _time_candidate(cfg, images, choice)
        spent = time.perf_counter() - t
        said.append(spent)
        log(f"  {choice.describe()}: {rate:.0f} img/s ({spent:.0f} s)")
        return rate

    return timer
