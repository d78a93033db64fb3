"""``training_loop(cfg)``: build → resume → step until done → save, with everything a long run needs.

The loop names no network, loss or augmentation: it knows the run's training method
(:mod:`facegan.train.methods`, the GAN by default) by role only — build it, restore it, call its
``step`` per batch, checkpoint its state, draw grids and score FID with its sampler. Around the
steps: ticks (a line in stats.jsonl, the progress bar), fixed-seed grids, FID with ``--ref`` (on
seeds disjoint from the handed-in ones) and ``best.pt``, atomic ``last.pt`` every few minutes and
on Ctrl-C/SIGTERM, a NaN/inf guard that stops before anything bad is written, a learning-rate
decay, and DDP under torchrun.

Reproducibility: the data order is a pure function of (seed, epoch), the method's noise has its
own generator, every random state is in the checkpoint, and nothing the loop does for the user
(grids, FID) draws from a random generator the training uses. So in fp32 on the CPU, N steps
straight and N/2 + resume + N/2 give bitwise the same weights.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch

from facegan.datapaths import check_train_data
from facegan.devices import accelerator, precision_problem
from facegan.errors import FaceganError
from facegan import interrupts
from facegan.fileio import atomic_write_text, clean_stale_temps
from facegan.images import load_uint8_array
from facegan.models.sampling import Sampler
from facegan.runlock import run_lock
import facegan.train.checkpoint as ckpt_io
import facegan.train.distributed as dist_util
from facegan.train.autotune import ThreadWatch, TuneResult
from facegan.train.autotune import apply as apply_tuning
from facegan.train.config import TrainConfig, config_to_dict, frozen_changes
from facegan.grids import save_grid
from facegan.train.methods import build_training
from facegan.train.monitor import Monitor, Scalars, guard_finite, plot_curves
from facegan.train.scoring import FidHook, FidSchedule

#: Samples in each fixed-seed grid (seeds 0..63: the same faces as samples 0000-0063.png).
GRID_SIZE = 64
#: The first tick comes after at most this many seconds, however slow the steps.
FIRST_TICK_S = 30.0
#: Later ticks come after at most this many seconds (a big preset's --tick-kimg on a slow machine
#: would otherwise leave the log, the curves and the speed watch silent for many minutes).
MAX_TICK_S = 120.0


@dataclass
class TrainResult:
    """How a call to :func:`training_loop` ended."""

    status: Literal["done", "paused", "interrupted"]
    """``paused``: this call stopped at its ``stop_nimg`` before the run's length"""
    nimg: int
    step: int
    last: Path
    best: Path | None = None
    best_fid: float | None = None
    signal: int | None = None
    trained_img: int = 0
    """images trained in this call (0 for a rerun of a run that had reached its length)"""
    elapsed: float = 0.0
    """seconds of training in all, across resumes"""


@dataclass
class Progress:
    """The counters a run carries from checkpoint to checkpoint."""

    nimg: int = 0
    """real images trained on so far"""
    step: int = 0
    """method steps so far"""
    elapsed: float = 0.0
    """seconds of training so far, across resumes"""
    best_fid: float | None = None
    best_kimg: float | None = None


def _same_file(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and Path(a).resolve() == Path(b).resolve()


def _check_data(images: np.ndarray, cfg: TrainConfig, world: int) -> None:
    n, h, w, _ = images.shape
    if (h, w) != (cfg.resolution, cfg.resolution):
        raise FaceganError(
            f"{cfg.data}: images are {h}x{w} but --resolution is {cfg.resolution}; "
            f"pass --resolution {h} or prepare the cache at {cfg.resolution}"
        )
    if cfg.batch % world:
        raise FaceganError(f"--batch {cfg.batch} does not split evenly over {world} processes")
    if n < cfg.batch:
        raise FaceganError(f"{cfg.data}: {n} images, fewer than one batch of {cfg.batch}")


def training_loop(cfg: TrainConfig, *, resume: bool = False, scorer: Any = None,
                  destroy_process_group: bool = True, tuned: TuneResult | None = None,
                  on_tick: Callable[[Progress, Callable[[], Sampler]], None] | None = None,
                  stop_nimg: int | None = None) -> TrainResult:
    """Train ``cfg.method`` on ``cfg.data`` into ``cfg.out`` until ``cfg.kimg``/``cfg.minutes``.

    Args:
        cfg: the run's config (for a resumed run, see :func:`facegan.train.entry.config_for_resume`).
        resume: continue from ``cfg.out/last.pt`` (its frozen options must match ``cfg``'s).
        scorer: a stand-in for the Inception scorer (tests); FID needs ``cfg.ref``.
        destroy_process_group: tear gloo/NCCL down at the end; ``facegan train`` under torchrun
            passes False and leaves with ``os._exit`` (see :func:`distributed.teardown`).
        tuned: the measured speed settings (:func:`facegan.train.autotune.tune_run`) used in
            place of ``cfg``'s ``auto`` ones; the thread count is then re-checked when the speed
            falls far below the measured one. ``cfg`` itself (and config.json) keeps ``auto``.
        on_tick: called on rank 0 after each tick with the counters and a function that returns
            the method's :class:`~facegan.models.sampling.Sampler` as of now — for a benchmark's
            curve snapshots; it must not touch the training's random state (sample by seeds).
        stop_nimg: end this call once the run has seen this many real images, with
            ``status="paused"`` and ``last.pt`` written: one segment of the run. Its schedules
            (learning-rate decay, EMA, augmentation) still span ``cfg.kimg``, so a benchmark can
            take a second seed of a long recipe only to its middle; a resume goes on from there.

    Process-wide settings (threads, flushing denormals, TF32) are the caller's:
    :func:`facegan.runtime.configure_torch`. Raises :class:`FaceganError` for unusable input and
    for a NaN/inf loss (after which the last good checkpoint is left as it was). Returns how the
    run ended; on SIGINT/SIGTERM it writes ``last.pt`` first and returns ``status="interrupted"``.
    """
    info = dist_util.setup(cfg.device)
    try:
        with run_lock(cfg.out, enabled=info.is_main):  # a second run into this folder stops here, naming the first
            return _Run(cfg, info, resume, scorer, tuned, on_tick, stop_nimg).train()
    except OSError as exc:
        if isinstance(exc, FaceganError):
            raise
        # Disk full, a read-only folder...: one line naming the file; last.pt is written atomically,
        # so the previous one is as it was.
        raise FaceganError(f"{exc.filename or cfg.out}: cannot write it: {exc.strerror or exc}; training stopped "
                           f"and {Path(cfg.out) / 'last.pt'} is the last good checkpoint") from None
    finally:
        dist_util.teardown(info, destroy=destroy_process_group)


class _Run:
    """One call of :func:`training_loop`: its method, loader, counters and outputs."""

    def __init__(self, cfg: TrainConfig, info: dist_util.DistInfo, resume: bool, scorer: Any,
                 tuned: TuneResult | None = None, on_tick: Callable[..., None] | None = None,
                 stop_nimg: int | None = None):
        self.cfg, self.info, self.resume, self.tuned, self.on_tick = cfg, info, resume, tuned, on_tick
        self.stop_nimg = float("inf") if stop_nimg is None else stop_nimg  # no pause: never reached
        self.watch = None
        self.lr_scale = 1.0
        self.say: Callable[[str], None] | None = None
        if tuned is not None:
            torch.set_num_threads(tuned.best.threads)
            self.watch = ThreadWatch(tuned.best.img_per_s, tuned.best.threads)
        self.out = Path(cfg.out)
        self.last_path, self.best_path = self.out / "last.pt", self.out / "best.pt"
        state = self._checked_state()
        saved_data = None if state is None else state["config"].get("data")
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            for stale in clean_stale_temps(self.out):  # left by a process killed mid-write
                print(f"facegan train: removed {stale.name}, a temporary file of a write that was killed", flush=True)
            atomic_write_text(self.out / "config.json", json.dumps(config_to_dict(cfg), indent=2) + "\n")
        check_train_data(cfg.data)
        images = load_uint8_array(cfg.data)
        _check_data(images, cfg, info.world_size)
        self.method, self.loader = build_training(cfg if tuned is None else apply_tuning(cfg, tuned), images, info)
        del images
        self.progress = Progress() if state is None else self._restore(state)
        del state
        hook = FidHook(cfg.ref, info.device, cfg.fid_n, scorer) if cfg.ref is not None and info.is_main else None
        self.total_img = None if cfg.kimg is None else int(round(cfg.kimg * 1000))
        self.total_s = None if cfg.minutes is None else cfg.minutes * 60.0
        self.mon = Monitor(self.out, total_img=self.total_img, total_seconds=self.total_s,
                           start_img=self.progress.nimg, start_seconds=self.progress.elapsed,
                           enabled=info.is_main, bar=cfg.progress)
        self.fid = FidSchedule(hook, cfg, info, self.mon, self.total_s)
        self.say = self.mon.message
        if saved_data is not None and not _same_file(saved_data, cfg.data):
            # Allowed (a moved cache, a bigger set), but never silently: said now and kept in stats.jsonl.
            self.mon.message(f"warning: resuming on other data: the run trained on {saved_data}, "
                             f"continues on {cfg.data}")
            self.mon.log({"event": "data_changed", "kimg": self.progress.nimg / 1000, "from": saved_data,
                          "to": cfg.data})

    def _checked_state(self) -> dict[str, Any] | None:
        if self.out.exists() and not self.out.is_dir():
            raise FaceganError(f"{self.out}: is a file; --out takes the run folder (it is created)")
        if not self.resume:
            if self.last_path.exists():
                raise FaceganError(f"{self.out}: already holds a run (last.pt); add --resume to continue it, "
                                   "or choose another --out")
            return None
        state = ckpt_io.load(self.last_path)
        changed = frozen_changes(state["config"], config_to_dict(self.cfg))
        if changed:
            raise FaceganError(f"{self.last_path}: the config differs from the run's in {', '.join(changed)}")
        return state

    def _restore(self, state: dict[str, Any]) -> Progress:
        """Load a checkpoint's method state, loader position and random states."""
        self.method.load_state_dict(state)
        self.loader.load_state_dict(state["loader"])
        progress = Progress(int(state["nimg"]), int(state["step"]), float(state["elapsed"]),
                            state.get("best_fid"), state.get("best_kimg"))
        rngs = state["rng"]
        if len(rngs) == self.info.world_size:
            ckpt_io.set_rng_state(rngs[self.info.rank], self.method.noise)
        else:  # a different number of processes: same weights, freshly seeded noise
            torch.manual_seed(self.cfg.seed + 1 + progress.step)
        return progress

    def sampler(self) -> Sampler:
        """The method's sampler as of now (its re-estimations announced in the log)."""
        return self.method.sampler(self.say)

    # --- outputs -------------------------------------------------------------------------------
    def announce(self) -> None:
        cfg, info = self.cfg, self.info
        if not info.is_main:
            return
        self.mon.message(
            f"facegan train: {self.method.describe()}; {len(self.loader.data)} images "
            f"{cfg.resolution}x{cfg.resolution}, batch {cfg.batch}"
            f"{f' over {info.world_size} processes' if info.distributed else ''}, on {info.device}"
            f"{f', resuming at kimg {self.progress.nimg / 1000:.1f}' if self.resume else ''}"
        )
        problem = precision_problem(cfg.precision, accelerator(info.device))
        if problem:
            self.mon.message(f"warning: {problem}")
        if self.tuned is not None:
            self.mon.message(self.tuned.report())
            b = self.tuned.best
            self.mon.log({"event": "speed", "kimg": self.progress.nimg / 1000, "cached": self.tuned.cached,
                          "chosen": b.describe(), "img_per_s": round(b.img_per_s, 1),
                          "tried": {c.describe(): round(c.img_per_s, 1) for c in self.tuned.tried}})
        if not (self.out / "grid-real.png").exists():
            save_grid(np.asarray(self.loader.data[:GRID_SIZE].cpu()), self.out / "grid-real.png")

    def grid(self) -> None:
        nimg = self.progress.nimg
        epoch = nimg / max(len(self.loader.data), 1)
        sampler = self.sampler()
        images = sampler(list(range(GRID_SIZE)))
        label = getattr(sampler, "label", "")
        self.mon.grid(images, self.out / f"grid-{nimg:09d}.png",
                      f"kimg {nimg / 1000:.1f}  epoch {epoch:.1f}{f'  {label}' if label else ''}", nimg)

    def save(self, path: Path) -> None:
        pr, info = self.progress, self.info
        rngs = dist_util.gather_objects(ckpt_io.rng_state(self.method.noise), info)  # every rank takes part
        checksums = dist_util.check_in_sync(self.method.sync_module, info)
        if not info.is_main:
            return
        with interrupts.writing(path, f"{path} (kimg {pr.nimg / 1000:.1f})"):
            ckpt_io.save_atomic({
                "format": ckpt_io.FORMAT, "config": config_to_dict(self.cfg), **self.method.state_dict(),
                "nimg": pr.nimg, "step": pr.step, "elapsed": pr.elapsed, "loader": self.loader.state_dict(),
                "rng": rngs, "best_fid": pr.best_fid, "best_kimg": pr.best_kimg, "world_size": info.world_size,
                "rank_checksums": checksums, "torch": str(torch.__version__),
            }, path)

    def _optional(self, work: Callable[[], Any]) -> bool:
        """Run a grid / FID score / callback that a Ctrl-C abandons; False when it did."""
        try:
            with interrupts.abortable():
                work()
            return True
        except interrupts.PhaseInterrupted:
            return False

    # --- the loop ------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        cfg, info, method, pr, mon = self.cfg, self.info, self.method, self.progress, self.mon
        next_tick = _next_multiple(pr.nimg, cfg.tick_kimg)
        next_grid = _next_multiple(pr.nimg, cfg.grid_kimg)
        next_fid = _next_multiple(pr.nimg, cfg.fid_kimg)
        sums = Scalars()
        t_run = time.perf_counter()
        elapsed0, start_nimg = pr.elapsed, pr.nimg
        tick_start_img, tick_train_s, t_tick = pr.nimg, 0.0, t_run
        first_tick_done = False
        last_ckpt_t = t_run
        last_fid_nimg = -1
        status: Literal["done", "paused", "interrupted"] = "done"

        def next_real() -> torch.Tensor:
            return next(self.loader)

        def fid_now(final: bool) -> None:
            nonlocal last_fid_nimg
            if self.fid.due(final, pr, self.sampler):
                improved = self.fid.score(pr, self.sampler)
                last_fid_nimg = pr.nimg
                if improved:
                    self.save(self.best_path)

        with interrupts.training() as stop:
            try:
                self.announce()
                while True:
                    pr.elapsed = elapsed0 + time.perf_counter() - t_run
                    finished = (self.total_img is not None and pr.nimg >= self.total_img) or \
                               (self.total_s is not None and pr.elapsed >= self.total_s)
                    paused = not finished and pr.nimg >= self.stop_nimg
                    # one all-reduce per step answers both: stop now? is a tick line due by the clock?
                    # (a line at least every FIRST_TICK_S, then every MAX_TICK_S)
                    tick_s = MAX_TICK_S if first_tick_done else FIRST_TICK_S
                    ending, late = dist_util.any_ranks(
                        [finished or paused or stop.received is not None, time.perf_counter() - t_tick >= tick_s],
                        info)
                    if ending:
                        if stop.received is not None or not (finished or paused):
                            status = "interrupted"
                        elif paused:
                            status = "paused"
                        break
                    if cfg.lr_decay_start is not None:
                        self._decay_lr()
                    t_step = time.perf_counter()
                    sums.add(method.step(next_real))  # --- one step of the method ---
                    pr.nimg += method.images_per_step
                    pr.step += 1
                    tick_train_s += time.perf_counter() - t_step
                    mon.step(pr.nimg, elapsed0 + time.perf_counter() - t_run)
                    # --- ticks: logs, grids, FID, checkpoints -------------------------------
                    last_step = self.total_img is not None and pr.nimg >= self.total_img
                    # a segment's end is a tick too: its snapshot and counters are logged where it stops
                    segment_end = last_step or pr.nimg >= self.stop_nimg
                    if pr.nimg < next_tick and not segment_end and not late:
                        continue
                    first_tick_done = True
                    self._tick(sums, tick_start_img, tick_train_s)
                    # the optional work below is abandoned at a Ctrl-C: the loop then saves and stops
                    if self.on_tick is not None and info.is_main:
                        self._optional(lambda: self.on_tick(pr, self.sampler))
                    next_tick = _next_multiple(pr.nimg, cfg.tick_kimg)
                    if info.is_main and (pr.nimg >= next_grid or segment_end):
                        if self._optional(self.grid):
                            next_grid = _next_multiple(pr.nimg, cfg.grid_kimg)
                    if cfg.ref is not None and pr.nimg >= next_fid:
                        pr.elapsed = elapsed0 + time.perf_counter() - t_run
                        self._optional(lambda: fid_now(final=False))
                        if last_fid_nimg == pr.nimg:
                            next_fid = _next_multiple(pr.nimg, cfg.fid_kimg)
                    elif cfg.ref is not None and last_step and last_fid_nimg != pr.nimg:
                        self._optional(lambda: fid_now(final=True))
                    if dist_util.any_rank(time.perf_counter() - last_ckpt_t >= cfg.ckpt_minutes * 60, info):
                        self.save(self.last_path)
                        last_ckpt_t = time.perf_counter()
                    dist_util.barrier(info)
                    tick_start_img, tick_train_s, t_tick = pr.nimg, 0.0, time.perf_counter()
                # --- the end: finished or stopped by a signal ---------------------------------
                if sums.n:  # the last partial tick is logged too: curves never miss the end
                    self._tick(sums, tick_start_img, tick_train_s)
                pr.elapsed = elapsed0 + time.perf_counter() - t_run
                trained = pr.nimg != start_nimg  # a rerun of a finished run scores and draws nothing new
                if status == "done" and cfg.ref is not None and last_fid_nimg != pr.nimg and trained:
                    self._optional(lambda: fid_now(final=True))
                if stop.received is not None:
                    status = "interrupted"
                self.save(self.last_path)
                if info.is_main:
                    if cfg.ref is not None and pr.best_fid is None and trained and status == "done":
                        mon.message("no FID while training: a single score would choose nothing (best.pt would "
                                    "be last.pt); score the samples with 'facegan fid'")
                    self._finish(status, stop.received, trained)
            finally:
                mon.close()
        return TrainResult(status, pr.nimg, pr.step, self.last_path,
                           self.best_path if pr.best_fid is not None else None, pr.best_fid, stop.received,
                           pr.nimg - start_nimg, pr.elapsed)

    def _decay_lr(self) -> None:
        """The learning rates fall linearly to 0 from ``lr_decay_start`` of the run to its end,
        measured in images (``--kimg``) or wall time (``--minutes``), whichever ends first."""
        pr, cfg = self.progress, self.cfg
        done = max(pr.nimg / self.total_img if self.total_img else 0.0,
                   pr.elapsed / self.total_s if self.total_s else 0.0)
        start = cfg.lr_decay_start
        scale = 1.0 if done <= start else max(0.0, (1.0 - done) / (1.0 - start))
        self.method.set_lr_scale(scale)
        self.lr_scale = scale

    def _tick(self, sums: Scalars, tick_start_img: int, tick_train_s: float) -> None:
        pr = self.progress
        means = sums.means()
        guard_finite(means, sums.n, pr, self.last_path, self.info, self.mon)
        rate = (pr.nimg - tick_start_img) / max(tick_train_s, 1e-9)
        pr.elapsed = max(pr.elapsed, 0.0)
        if self.cfg.lr_decay_start is not None:
            means["lr_scale"] = self.lr_scale
        self.mon.tick({"kimg": pr.nimg / 1000, "step": pr.step, "img_per_s": rate, **means,
                       "elapsed_s": round(pr.elapsed, 1), "eta_s": self.mon.eta(pr.nimg, pr.elapsed, rate)})
        sums.reset()
        change = self.watch.after_tick(rate) if self.watch is not None else None
        if change is not None:
            torch.set_num_threads(change[0])
            self.mon.message(f"threads: {change[1]}")
            self.mon.log({"event": "threads", "kimg": pr.nimg / 1000, "threads": change[0], "why": change[1]})

    def _finish(self, status: str, sig: int | None, trained: bool) -> None:
        pr, out = self.progress, self.out
        if status == "done" and trained and not (out / f"grid-{pr.nimg:09d}.png").exists():
            self.grid()
        self.mon.log({"event": status, "kimg": pr.nimg / 1000, "step": pr.step, "elapsed_s": round(pr.elapsed, 1),
                      **({"signal": sig} if sig else {})})
        plot_curves(self.mon.stats_path, out / "curves.png")
        what = {"interrupted": "stopped by signal", "paused": "paused as asked"}.get(status, "finished")
        self.mon.close()
        print(f"facegan train: {what} at kimg {pr.nimg / 1000:.1f} (step {pr.step}, "
              f"{pr.elapsed / 60:.1f} min); checkpoint {self.last_path}"
              + (f"; best FID {pr.best_fid:.2f} at kimg {pr.best_kimg:.1f} in {self.best_path}"
                 if pr.best_fid is not None else "")
              + (f"\n  resume with: facegan train --out {out} --resume" if status != "done" else ""),
              flush=True)


def _next_multiple(nimg: int, kimg: float) -> int:
    every = max(1, int(kimg * 1000))
    return (nimg // every + 1) * every
