"""``training_loop(cfg)``: the DCGAN recipe with everything a long run needs around it.

One step is the PyTorch tutorial's: D learns on a real batch and a fake batch (scored
separately, so BatchNorm in D sees pure batches), then G learns through D on the same fakes.
Around it: bf16 autocast and channels_last where they pay, a weight EMA of G, ticks (a line in
stats.jsonl, the progress bar), fixed-noise grids, FID@1k with ``--ref`` and ``best.pt``,
atomic ``last.pt`` every few minutes and on Ctrl-C/SIGTERM, a NaN/inf guard that stops before
anything bad is written, and DDP under torchrun.

Reproducibility: the data order is a pure function of (seed, epoch), the training noise has its
own generator, every random state is in the checkpoint, and nothing the loop does for the user
(grids, FID, BatchNorm recalibration) draws from a random generator the training uses. So in
fp32 on the CPU, N steps straight and N/2 + resume + N/2 give bitwise the same weights.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from facegan.config import from_dict, to_dict
from facegan.errors import FaceganError
from facegan.models.matmul_conv import matmul_convs_on, use_matmul_convs
from facegan.train import checkpoint as ckpt_io
from facegan.train import distributed as dist_util
from facegan.train.config import FROZEN_ON_RESUME, TrainConfig
from facegan.train.ema import ema_beta, has_batchnorm, make_ema, recalibrate_batchnorm, update_ema
from facegan.train.monitor import Monitor, plot_curves, save_grid

#: Samples in each fixed-noise grid (seeds 0..63: the same faces as samples 0000-0063.png).
GRID_SIZE = 64


@dataclass
class TrainResult:
    """How a call to :func:`training_loop` ended."""

    status: Literal["done", "interrupted"]
    nimg: int
    step: int
    last: Path
    best: Path | None = None
    best_fid: float | None = None
    signal: int | None = None


@dataclass
class GanStep:
    """One step of the tutorial's recipe: D on a real and a fake batch, then G through D.

    ``G_train``/``D_train`` are the training views (DDP-wrapped, maybe compiled); ``D_for_g`` is
    D without the DDP wrapper, for G's step, which needs D's output but not its gradients;
    ``D`` is the plain module whose ``requires_grad`` is switched off meanwhile. ``autocast``
    is the device type to run bf16 autocast on, or None for fp32. ``freeze_d`` switches D's
    ``requires_grad`` off for G's step (saves D's weight gradients); off under ``torch.compile``,
    where the toggle forces recompiles (and broke the compiled backward on torch 2.11 + CUDA) —
    D's stray gradients are then simply cleared before its next step.
    """

    G_train: nn.Module
    D_train: nn.Module
    D_for_g: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    loss: Any
    autocast: str | None = None
    freeze_d: bool = True

    def _ctx(self):
        return torch.autocast(self.autocast, dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()

    def __call__(self, real: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Update D then G on ``real`` (B, 3, H, W) in [-1, 1] and noise ``z``; the two losses."""
        with self._ctx():
            fake = self.G_train(z)  # (B, 3, H, W)
            loss_d = self.loss.d(self.D_train(real), self.D_train(fake.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        if self.freeze_d:
            self.D.requires_grad_(False)  # G's step: no gradients for D's weights
        try:
            with self._ctx():
                loss_g = self.loss.g(self.D_for_g(fake))
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
        finally:
            if self.freeze_d:
                self.D.requires_grad_(True)
        return loss_d.detach(), loss_g.detach()


def cpu_has_fast_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX (where bf16 autocast measured 2-3x faster)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(precision: str, device: torch.device) -> bool:
    """Resolve ``--precision`` for ``device``: bf16 autocast only where it measured faster.

    On CPUs with AVX512-BF16/AMX it did (2-4x for the DCGAN, 2-core Xeon); on an H200 the DCGAN
    at batch 128 ran faster in fp32/TF32 (19k vs 16k img/s: too small a model for the casts to
    pay), so ``auto`` means fp32 on GPUs; ask for ``bf16`` for larger models.
    """
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return False
    return cpu_has_fast_bf16()


def config_for_resume(out: str | Path, given: dict[str, Any]) -> TrainConfig:
    """The config of the run in ``out`` with the options ``given`` now applied on top.

    Options that shape the models or the data stream (:data:`FROZEN_ON_RESUME`) cannot change.
    """
    last = Path(out) / "last.pt"
    if not last.is_file():
        raise FaceganError(f"{last}: nothing to resume (no checkpoint in {out})")
    saved = ckpt_io.load(last)["config"]
    changed = [k for k in FROZEN_ON_RESUME if k in given and given[k] != saved.get(k)]
    if changed:
        raise FaceganError(
            f"{last}: cannot change {', '.join('--' + k.replace('_', '-') for k in changed)} when resuming "
            f"(the run has {', '.join(f'{k}={saved.get(k)!r}' for k in changed)}); start a new --out instead"
        )
    merged = {**saved, **given, "out": str(out)}
    return from_dict(TrainConfig, merged)


class _StopSignals:
    """Turns the first SIGINT/SIGTERM into a flag the loop polls; a second one stops at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:  # second signal: the user means it
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


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
                  destroy_process_group: bool = True) -> TrainResult:
    """Train ``cfg.arch`` on ``cfg.data`` into ``cfg.out`` until ``cfg.kimg``/``cfg.minutes``.

    Args:
        cfg: the run's config (for a resumed run, see :func:`config_for_resume`).
        resume: continue from ``cfg.out/last.pt`` instead of starting fresh.
        scorer: stand-in for ``facegan.fid.FIDScorer`` (used only with ``cfg.ref``).
        destroy_process_group: under torchrun, destroy the process group at the end; the CLI
            passes False and leaves with ``os._exit`` (see :func:`distributed.teardown`).

    Raises :class:`FaceganError` for unusable input and for a NaN/inf loss (after which the
    last good checkpoint is left as it was). Returns how the run ended; on SIGINT/SIGTERM it
    writes ``last.pt`` first and returns ``status="interrupted"``.
    """
    from facegan.images import load_uint8_array
    from facegan.loader import BatchLoader
    from facegan.losses import get_loss
    from facegan.models.registry import create_discriminator, create_generator

    info = dist_util.setup(cfg.device)
    try:
        return _train(cfg, info, resume, scorer, load_uint8_array, BatchLoader, get_loss,
                      create_generator, create_discriminator)
    finally:
        dist_util.teardown(info, destroy=destroy_process_group)


def _train(cfg, info, resume, scorer, load_uint8_array, BatchLoader, get_loss, create_generator,
           create_discriminator) -> TrainResult:
    device = info.device
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # measured 4-7x slower on real CelebA without it
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 tensor cores for fp32 training
        torch.backends.cudnn.allow_tf32 = True
    out = Path(cfg.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    state = None
    if resume:
        state = ckpt_io.load(last_path)
        changed = [k for k in FROZEN_ON_RESUME if state["config"].get(k) != getattr(cfg, k)]
        if changed:
            raise FaceganError(f"{last_path}: the config differs from the run's in {', '.join(changed)}")
    elif last_path.exists():
        raise FaceganError(f"{out}: already holds a run (last.pt); add --resume to continue it, or choose another --out")
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")

    images = load_uint8_array(cfg.data)
    _check_data(images, cfg, info.world_size)
    bf16 = use_bf16(cfg.precision, device)
    # Under torch.compile, inductor picks conv layouts itself; handing it channels_last weights
    # broke G's first (1x1-input) layer's backward on torch 2.11 + CUDA, so leave them NCHW there.
    channels_last = cfg.channels_last and not cfg.compile
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    # Same seed on every rank: identical initial weights (DDP also broadcasts rank 0's).
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    torch.manual_seed(cfg.seed)
    g_kw, d_kw = cfg.model_kwargs()
    G = create_generator(cfg.arch, **g_kw).to(device, memory_format=memory_format)
    D = create_discriminator(cfg.arch, **d_kw).to(device, memory_format=memory_format)
    matmul = matmul_convs_on(cfg.matmul_convs, device)
    if matmul:  # same parameters and state_dict; only how the 4x4-map layers compute changes
        use_matmul_convs(G)
        use_matmul_convs(D)
    G_ema = make_ema(G) if cfg.ema else None
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    loss = get_loss(cfg.loss)
    loader = BatchLoader(
        images, cfg.batch // info.world_size, device=device, flip=cfg.flip, seed=cfg.seed,
        rank=info.rank, world_size=info.world_size, channels_last=channels_last,
    )
    del images
    noise = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + 104729 * (info.rank + 1))
    nimg = step = 0
    elapsed = 0.0
    best_fid: float | None = None
    best_kimg: float | None = None
    if state is not None:
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        if G_ema is not None:
            G_ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        loader.load_state_dict(state["loader"])
        nimg, step, elapsed = int(state["nimg"]), int(state["step"]), float(state["elapsed"])
        best_fid, best_kimg = state.get("best_fid"), state.get("best_kimg")
        rngs = state["rng"]
        if len(rngs) == info.world_size:
            ckpt_io.set_rng_state(rngs[info.rank], noise)
        else:  # a different number of processes: same weights, freshly seeded noise
            torch.manual_seed(cfg.seed + 1 + step)
        del state

    # Training views: DDP-wrapped (gradients averaged over ranks) and optionally compiled.
    G_train = dist_util.wrap_ddp(G, info)
    D_train = dist_util.wrap_ddp(D, info)
    D_for_g = D  # G's step needs D's output but not D's gradients: no DDP sync for it
    if cfg.compile:
        G_train, D_train, D_for_g = torch.compile(G_train), torch.compile(D_train), torch.compile(D)
    gan_step = GanStep(G_train, D_train, D_for_g, D, opt_g, opt_d, loss, device.type if bf16 else None,
                       freeze_d=not cfg.compile)

    fid_hook = None
    if cfg.ref is not None and info.is_main:
        from facegan.train.scoring import FidHook

        fid_hook = FidHook(cfg.ref, device, cfg.fid_n, scorer)
    total_img = None if cfg.kimg is None else int(round(cfg.kimg * 1000))
    total_s = None if cfg.minutes is None else cfg.minutes * 60.0
    mon = Monitor(out, total_img=total_img, total_seconds=total_s, start_img=nimg, start_seconds=elapsed,
                  enabled=info.is_main, bar=cfg.progress)
    if info.is_main:
        mon.message(
            f"facegan train: {cfg.arch} G {_count(G) / 1e6:.2f}M / D {_count(D) / 1e6:.2f}M params, "
            f"{len(loader.data)} images {cfg.resolution}x{cfg.resolution}, batch {cfg.batch}"
            f"{f' over {info.world_size} processes' if info.distributed else ''}, on {device}, "
            f"{'bf16 autocast' if bf16 else 'fp32'}{', channels_last' if channels_last else ''}"
            f"{', 4x4-map convs as matmuls' if matmul else ''}{', torch.compile' if cfg.compile else ''}"
            f"{f', resuming at kimg {nimg / 1000:.1f}' if resume else ''}"
        )
        if not (out / "grid-real.png").exists():
            save_grid(np.asarray(loader.data[:GRID_SIZE].cpu()), out / "grid-real.png")

    ema_ready_step = -1  # the step at which G_ema's BatchNorm statistics were last re-estimated

    def sampler() -> nn.Module:
        """The generator used for grids, FID and sampling: EMA (recalibrated) or G."""
        nonlocal ema_ready_step
        if G_ema is None:
            return G
        if cfg.ema_bn == "recalibrate" and has_batchnorm(G_ema) and ema_ready_step != step:
            recalibrate_batchnorm(G_ema, batches=cfg.bn_batches, batch_size=128, seed=cfg.seed + 1, device=device)
            ema_ready_step = step
        return G_ema

    def save(path: Path) -> None:
        rngs = dist_util.gather_objects(ckpt_io.rng_state(noise), info)  # every rank takes part
        checksums = dist_util.check_in_sync(G, info)
        if not info.is_main:
            return
        sampler()  # the EMA's statistics must match the weights saved with them
        ckpt_io.save_atomic({
            "format": ckpt_io.FORMAT, "config": to_dict(cfg), "G": G.state_dict(), "D": D.state_dict(),
            "G_ema": None if G_ema is None else G_ema.state_dict(), "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(), "nimg": nimg, "step": step, "elapsed": elapsed,
            "loader": loader.state_dict(), "rng": rngs, "best_fid": best_fid, "best_kimg": best_kimg,
            "world_size": info.world_size, "rank_checksums": checksums, "torch": torch.__version__,
        }, path)

    next_tick = _next_multiple(nimg, cfg.tick_kimg)
    next_grid = _next_multiple(nimg, cfg.grid_kimg)
    fid_every = cfg.fid_kimg  # grows when scoring would take more than cfg.fid_share of the time
    next_fid = _next_multiple(nimg, fid_every)
    loss_sum = torch.zeros(2, device=device)
    loss_n = 0
    t_run = time.perf_counter()
    elapsed0 = elapsed
    tick_start_img, tick_train_s = nimg, 0.0
    last_ckpt_t = t_run
    last_fid_nimg = -1
    status: Literal["done", "interrupted"] = "done"

    with _StopSignals() as stop:
        try:
            while True:
                elapsed = elapsed0 + time.perf_counter() - t_run
                finished = (total_img is not None and nimg >= total_img) or (total_s is not None and elapsed >= total_s)
                if dist_util.any_rank(finished or stop.received is not None, info):
                    if stop.received is not None or not finished:
                        status = "interrupted"
                    break
                t_step = time.perf_counter()
                # --- one DCGAN step -----------------------------------------------------------
                real = next(loader)
                z = torch.randn(loader.batch_size, cfg.z_dim, device=device, generator=noise)
                loss_d, loss_g = gan_step(real, z)
                nimg += cfg.batch
                step += 1
                if G_ema is not None:
                    update_ema(G_ema, G, ema_beta(cfg.batch, nimg, cfg.ema_kimg, cfg.ema_rampup))
                loss_sum += torch.stack([loss_d.float(), loss_g.float()])
                loss_n += 1
                tick_train_s += time.perf_counter() - t_step
                mon.step(nimg)
                # --- ticks: logs, grids, FID, checkpoints -----------------------------------
                last_step = total_img is not None and nimg >= total_img
                if nimg < next_tick and not last_step:
                    continue
                _guard_finite(loss_sum, loss_n, nimg, step, last_path, info, mon)
                rate = (nimg - tick_start_img) / max(tick_train_s, 1e-9)
                elapsed = elapsed0 + time.perf_counter() - t_run
                ld, lg = (loss_sum / max(loss_n, 1)).tolist()
                mon.tick({
                    "kimg": nimg / 1000, "step": step, "img_per_s": rate, "loss_d": ld, "loss_g": lg,
                    "elapsed_s": round(elapsed, 1), "eta_s": mon.eta(nimg, elapsed, rate),
                })
                loss_sum.zero_()
                loss_n = 0
                next_tick = _next_multiple(nimg, cfg.tick_kimg)
                if info.is_main and (nimg >= next_grid or last_step):
                    save_grid(_grid(sampler()), out / f"grid-{nimg:09d}.png")
                    next_grid = _next_multiple(nimg, cfg.grid_kimg)
                if cfg.ref is not None and (nimg >= next_fid or last_step):
                    t_fid = time.perf_counter()  # on every rank: the others wait for rank 0's score
                    improved, best_fid, best_kimg = _score(fid_hook, sampler, nimg, best_fid, best_kimg, mon, cfg, info)
                    last_fid_nimg = nimg
                    score_s = time.perf_counter() - t_fid
                    interval = fid_interval(cfg, rate, score_s, info.distributed)
                    if interval != fid_every and info.is_main:
                        mon.message(f"FID every {interval:g} kimg from now: one score took {score_s:.1f} s "
                                    f"and may use at most {cfg.fid_share:.0%} of the time (--fid-share)")
                    fid_every = interval
                    next_fid = _next_multiple(nimg, fid_every)
                    if improved:
                        save(best_path)
                if dist_util.any_rank(time.perf_counter() - last_ckpt_t >= cfg.ckpt_minutes * 60, info):
                    save(last_path)
                    last_ckpt_t = time.perf_counter()
                dist_util.barrier(info)
                tick_start_img, tick_train_s = nimg, 0.0
            # --- the end: finished or stopped by a signal -------------------------------------
            if loss_n:
                _guard_finite(loss_sum, loss_n, nimg, step, last_path, info, mon)
            elapsed = elapsed0 + time.perf_counter() - t_run
            if status == "done" and cfg.ref is not None and last_fid_nimg != nimg:
                improved, best_fid, best_kimg = _score(fid_hook, sampler, nimg, best_fid, best_kimg, mon, cfg, info)
                if improved:
                    save(best_path)
            save(last_path)
            if info.is_main:
                if status == "done" and not (out / f"grid-{nimg:09d}.png").exists():
                    save_grid(_grid(sampler()), out / f"grid-{nimg:09d}.png")
                mon.log({"event": status, "kimg": nimg / 1000, "step": step, "elapsed_s": round(elapsed, 1),
                         **({"signal": stop.received} if stop.received else {})})
                plot_curves(mon.stats_path, out / "curves.png")
                what = "stopped by signal" if status == "interrupted" else "finished"
                mon.close()
                print(f"facegan train: {what} at kimg {nimg / 1000:.1f} (step {step}, "
                      f"{elapsed / 60:.1f} min); checkpoint {last_path}"
                      + (f"; best FID {best_fid:.2f} at kimg {best_kimg:.1f} in {best_path}" if best_fid is not None else "")
                      + (f"\n  resume with: facegan train --out {out} --resume" if status == "interrupted" else ""),
                      flush=True)
        finally:
            mon.close()
    return TrainResult(status, nimg, step, last_path, best_path if best_fid is not None else None, best_fid,
                       stop.received)


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _next_multiple(nimg: int, kimg: float) -> int:
    every = max(1, int(kimg * 1000))
    return (nimg // every + 1) * every


def _grid(generator: nn.Module) -> np.ndarray:
    from facegan.sample import generate

    return generate(generator, list(range(GRID_SIZE)))


def _guard_finite(loss_sum: torch.Tensor, n: int, nimg: int, step: int, last: Path, info, mon: Monitor) -> None:
    """Stop every rank with a clear message if a loss went NaN/inf since the last tick."""
    bad = not bool(torch.isfinite(loss_sum).all())
    if dist_util.any_rank(bad, info):
        mon.log({"event": "nan", "kimg": nimg / 1000, "step": step})
        kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint had been written yet"
        raise FaceganError(
            f"a loss became NaN/inf within the {n} steps before step {step} (kimg {nimg / 1000:.1f}); "
            f"training stopped and {kept}. Try lower --lr-d/--lr-g, --precision fp32, or resume from it."
        )


def fid_interval(cfg: TrainConfig, img_per_s: float, score_s: float, distributed: bool = False) -> float:
    """kimg until the next FID: ``--fid-kimg``, or the smallest multiple of it that keeps scoring
    within ``--fid-share`` of the time at this training speed.

    Scoring for a share f of the time means training for (1 - f) / f times as long as one score
    takes. Under torchrun every rank must agree on when to score, so the fixed interval is kept.
    """
    if cfg.fid_share <= 0 or distributed or img_per_s <= 0:
        return cfg.fid_kimg
    need_kimg = img_per_s * score_s * (1 - cfg.fid_share) / cfg.fid_share / 1000
    return cfg.fid_kimg * max(1, math.ceil(need_kimg / cfg.fid_kimg - 1e-9))


def _score(hook, sampler, nimg, best_fid, best_kimg, mon: Monitor, cfg: TrainConfig, info):
    """FID on rank 0 (``hook`` is None elsewhere); every rank learns whether it improved."""
    better = False
    if hook is not None:
        t = time.perf_counter()
        fid = hook(sampler())
        floor = hook.floor
        better = best_fid is None or fid < best_fid
        if better:
            best_fid, best_kimg = fid, nimg / 1000
        mon.log({"kimg": nimg / 1000, "fid": fid, "fid_n": cfg.fid_n, "fid_floor": floor,
                 "fid_s": round(time.perf_counter() - t, 1)})
        mon.message(
            f"FID@{cfg.fid_n} = {fid:.2f} at kimg {nimg / 1000:.1f} ({cfg.fid_n} samples vs {hook.ref_path.name}"
            + (f"; real-data floor {floor:.1f}" if floor is not None else "")
            + f"){'  new best -> best.pt' if better else f'  (best {best_fid:.2f})'}"
        )
    better = dist_util.any_rank(better, info)
    if better and hook is None:
        best_kimg = nimg / 1000
    return better, best_fid, best_kimg
