"""``facegan run``: the whole path in one call — prepare → reference → train → sample → score → pack.

Each step is the library function its own command calls, and each is skipped or resumed when
its result is already in the run folder, so running the same command again after a Ctrl-C, a
crash or a finished run continues where it stopped instead of starting over:

=========== ===================================== ===========================================
step        writes (in ``--out``)                 on a second run
=========== ===================================== ===========================================
prepare     ``cache64.npy`` + ``.json``           reused when made from the same photos
reference   ``ref.npz`` + ``ref-floor.json``      reused when made from the same cache
train       ``last.pt``, ``best.pt``, grids, ...  resumed from ``last.pt`` (up to the length)
sample      ``samples/0000.png`` … ``0999.png``   rewritten (cheap, deterministic: seed i)
score       ``score.json``                        rewritten
pack        ``<student>.tar.gz``                  rewritten and verified
=========== ===================================== ===========================================

The reference statistics are those of the prepared photos (at most ``ref_n`` of them, a seeded
random subset), and the same single Inception pass gives the real-data floor: the FID that real
photos themselves get at the sample size, printed beside the score so a number can be read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from facegan.errors import FaceganError
from facegan.fileio import atomic_write_text, file_digest

#: The brief's target: FID@1k below this.
TARGET_FID = 20.0

#: Where ``facegan run`` looks for CelebA when ``--data`` is not given (torchvision's layout).
DEFAULT_CELEBA_ROOT = Path("data")


@dataclass
class RunConfig:
    """Options of ``facegan run`` (each becomes a ``--option``)."""

    data: str | None = None
    """the photos: CelebA (torchvision layout), any folder, .zip or .tar(.gz) of images, or a prepared .npy cache; default: CelebA in ./data/celeba, downloaded there when missing and the machine is online"""
    out: str = ""
    """the run folder: cache, reference statistics, checkpoints, samples, score and archive go here"""
    student: str = "student_number"
    """your student number: the archive is <out>/<student>.tar.gz, as the brief asks"""
    minutes: float | None = None
    """length of training in minutes (default 60 when --kimg is not given either)"""
    kimg: float | None = None
    """length of training in thousands of images shown to D"""
    split: Literal["all", "train", "valid", "test"] = "all"
    """CelebA split to train on (ignored for plain folders)"""
    device: str = "auto"
    """where to train, sample and score: auto, cpu, cuda or cuda:N; auto picks cuda when available"""
    seed: int = 0
    """seed of the training run and of the reference subset"""
    n: int = 1000
    """samples to generate, score and pack (the brief: 1,000)"""
    ref: str | None = None
    """reference FID statistics (.npz); default: computed from the prepared photos"""
    ref_n: int = 10000
    """at most this many prepared photos (a seeded random subset) make the reference statistics"""
    fid_kimg: float | None = None
    """score FID@n every this many thousand images while training (best.pt keeps the best; not given: 50, or the preset's)"""
    preset: str | None = None
    """training recipe: dcgan (the brief's, also when not given), cpu, gpu (see 'facegan train --help')"""
    threads: int | None = None
    """CPU threads for torch (not given: measured by the speed check; on a CPU shared with other jobs 1 can be much faster)"""

    def __post_init__(self) -> None:
        problems = []
        if not self.out:
            problems.append("--out (the run folder) is required")
        if self.minutes is None and self.kimg is None:
            self.minutes = 60.0
        from facegan.devices import device_problem

        if device_problem(self.device):
            problems.append(device_problem(self.device))
        if self.n < 2:
            problems.append(f"--n must be at least 2 (FID needs 2 images), got {self.n}")
        if self.ref_n < 2:
            problems.append(f"--ref-n must be at least 2, got {self.ref_n}")
        if not self.student or "/" in self.student or self.student.startswith("."):
            problems.append(f"--student must be a plain name like 20251234, got {self.student!r}")
        if problems:
            raise FaceganError("run config: " + "; ".join(problems))


@dataclass
class RunResult:
    """Where everything of a finished ``facegan run`` is, and its score."""

    out: Path
    cache: Path
    ref: Path
    checkpoint: Path
    samples: Path
    archive: Path
    fid: float
    n: int
    floor: dict[str, Any] | None


def resolve_photos(data: str | None, log: Callable[[str], None] = print) -> Path:
    """The photo source: ``data`` as given, or CelebA under ./data (downloaded when missing)."""
    from facegan.data import download_celeba, find_celeba

    if data is not None:
        path = Path(data)
        if not path.exists():
            raise FaceganError(f"{path}: no such file or folder (--data)")
        return path
    root = DEFAULT_CELEBA_ROOT
    if find_celeba(root) is None:
        log(f"facegan run: no CelebA in {root / 'celeba'}; downloading it there with torchvision ...")
        download_celeba(root)  # raises a FaceganError that says what to put where
    return root


def prepare_step(cfg: RunConfig, out: Path, log: Callable[[str], None]) -> Path:
    """The uint8 cache: ``--data`` itself when it is a ``.npy``, else ``out/cache64.npy``."""
    from facegan.data import PrepareConfig, prepare, sidecar_path

    photos = resolve_photos(cfg.data, log)
    if photos.suffix == ".npy":
        return photos
    cache, made_from = out / "cache64.npy", out / "cache64.source.json"
    source = {"photos": str(photos.resolve()), "split": cfg.split}
    if cache.is_file() and sidecar_path(cache).is_file() and made_from.is_file():
        if json.loads(made_from.read_text()) == source:
            log(f"[1/6] prepare: reusing {cache}")
            return cache
    log(f"[1/6] prepare: {photos} -> {cache}")
    report = prepare(photos, cache, PrepareConfig(split=cfg.split), progress=True, log=log)
    made_from.write_text(json.dumps(source))
    log(f"      {report.count} images, {len(report.skipped)} skipped")
    return cache


def reference_step(cfg: RunConfig, cache: Path, out: Path, device: str, log: Callable[[str], None]):
    """``(ref.npz path, floor dict or None)``: the reference statistics and the real-data floor."""
    import numpy as np

    from facegan.fid import FIDScorer, Stats
    from facegan.fid.floor import floor_keep, real_floor
    from facegan.fid.sources import open_images, summarize_source
    from facegan.images import load_uint8_array

    if cfg.ref is not None:
        given = Stats.load(cfg.ref)  # fail now, not after training, when it is not readable
        floor = given.floor if given.floor_at(cfg.n) is not None else None
        log(f"[2/6] reference: {cfg.ref} (given; real-data floor {'recorded' if floor else 'unknown'})")
        return Path(cfg.ref), floor
    ref, floor_file = out / "ref.npz", out / "ref-floor.json"
    images = load_uint8_array(cache)
    key = {"cache": str(cache.resolve()), "cache_bytes": cache.stat().st_size, "ref_n": cfg.ref_n,
           "seed": cfg.seed, "n": cfg.n}
    if ref.is_file() and floor_file.is_file():
        saved = json.loads(floor_file.read_text())
        if saved.get("key") == key:
            log(f"[2/6] reference: reusing {ref} ({saved['n_ref']} photos)")
            return ref, saved.get("floor")
    source = cache
    if len(images) > cfg.ref_n:
        # A seeded subset, kept sorted so the cache is read in order (fast on a memory map).
        idx = np.sort(np.random.default_rng(cfg.seed).choice(len(images), cfg.ref_n, replace=False))
        source = out / "ref-images.npy"
        np.save(source, images[idx])
    n_ref = min(len(images), cfg.ref_n)
    # The floor needs n real photos per split plus the rest to compare with: as many as fit.
    splits = max(0, min(10, n_ref // cfg.n - 1))
    log(f"[2/6] reference: FID statistics of {n_ref} prepared photos -> {ref}")
    scorer = FIDScorer(device=device, progress=True)
    log(f"      Inception on {n_ref} photos: about {_inception_s(scorer, n_ref)} (Ctrl-C stops; it is made again next time)")
    if splits < 1:
        log(f"      no real-data floor: it needs at least {2 * cfg.n} photos ({cfg.n} to score like samples + "
            f"the rest to compare with); {n_ref} here")
    stats, summary = summarize_source(open_images(source), scorer, keep=floor_keep(cfg.n, splits))
    floor = real_floor(summary, cfg.n, splits).to_dict() if splits >= 1 else None
    stats.floor = floor  # recorded in ref.npz: training prints it beside every FID
    stats.save(ref)
    if source != cache:
        Path(source).unlink()
    floor_file.write_text(json.dumps({"key": key, "n_ref": n_ref, "floor": floor}, indent=1))
    return ref, floor


def train_step(cfg: RunConfig, cache: Path, ref: Path, out: Path, log: Callable[[str], None],
               overrides: dict[str, Any] | None = None) -> Path:
    """Train (or resume) in ``out``; returns the checkpoint to sample from (best.pt if any).

    ``overrides``: further :class:`~facegan.train.TrainConfig` fields (model widths, batch...).
    """
    from facegan.train.entry import resolve_config, run_training

    length = {"minutes": cfg.minutes, "kimg": cfg.kimg}
    resume = (out / "last.pt").is_file()
    if resume:
        log(f"[3/6] train: resuming {out / 'last.pt'} (until {_length(cfg)})")
        given = {**length, "out": str(out), "ref": str(ref), "fid_n": cfg.n, "device": cfg.device,
                 "threads": cfg.threads}
    else:
        log(f"[3/6] train: {'preset ' + cfg.preset if cfg.preset else 'the DCGAN'} for {_length(cfg)} -> {out}")
        given = dict(data=str(cache), out=str(out), ref=str(ref), fid_n=cfg.n, device=cfg.device, seed=cfg.seed,
                     threads=cfg.threads, preset=cfg.preset, **length, **(overrides or {}))
    if cfg.fid_kimg is not None:
        given["fid_kimg"] = cfg.fid_kimg
    result = run_training(resolve_config(given, resume=resume), resume=resume, log=log)
    if result.status != "done":
        log(f"      stopped; run the same 'facegan run' command again to continue from {out / 'last.pt'}")
        raise KeyboardInterrupt  # the checkpoint is written
    if not result.trained_img:
        more = (f"--minutes {math.ceil(result.elapsed / 60 + 30)}" if cfg.minutes is not None
                else f"--kimg {result.nimg / 1000 + 100:g}")
        log(f"      already trained {result.elapsed / 60:.0f} min ({result.nimg / 1000:.1f} kimg); "
            f"pass {more} to continue")
    return result.best if result.best is not None and result.best.is_file() else result.last


def _length(cfg: RunConfig) -> str:
    return f"{cfg.kimg:g} kimg" if cfg.kimg is not None else f"{cfg.minutes:g} minutes"


def run_pipeline(cfg: RunConfig, log: Callable[[str], None] = print,
                 train_overrides: dict[str, Any] | None = None) -> RunResult:
    """Run every step of the brief into ``cfg.out``; see the module docstring.

    ``train_overrides``: :class:`~facegan.train.TrainConfig` fields beyond the defaults (tests use
    tiny models; ``facegan train`` is the place for the full set of knobs).
    """
    from facegan.fid import FIDScorer, compare
    from facegan.pack import pack
    from facegan.sample import sample_to_folder

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    from facegan.train.distributed import pick_device

    device = str(pick_device(cfg.device))  # the one rule for auto/cpu/cuda, shared with training
    cache = prepare_step(cfg, out, log)
    ref, floor = reference_step(cfg, cache, out, device, log)
    ckpt = train_step(cfg, cache, ref, out, log, train_overrides)

    samples = out / "samples"
    archive = out / f"{cfg.student}.tar.gz"
    key = {"checkpoint": file_digest(ckpt), "n": cfg.n, "reference": file_digest(ref), "student": cfg.student}
    done = _reusable_score(out / "score.json", key, samples, archive, cfg.n)
    if done is not None:
        log(f"[4-6/6] sample, score, pack: reusing {out / 'score.json'} (the checkpoint {ckpt.name} is unchanged)")
        return _report(RunResult(out, cache, ref, ckpt, samples, archive, done["fid"], done["n_reference"], floor),
                       done["n_samples"], floor, None, cfg, log)
    log(f"[4/6] sample: {cfg.n} images from {ckpt} (EMA weights, image i from seed i) -> {samples}")
    sample_to_folder(ckpt, samples, cfg.n, device=device, overwrite=True)

    log(f"[5/6] score: FID of {samples} against {ref}")
    scorer = FIDScorer(device=device, progress=True)
    log(f"      Inception on {cfg.n} samples: about {_inception_s(scorer, cfg.n)}")
    result = compare(samples, ref, scorer, kid_subsets=0)  # its warnings: the floor line below says it
    log(f"[6/6] pack: {archive}")
    report = pack(samples, archive, count=cfg.n)
    for w in report.warnings:
        log(f"      warning: {w}")
    from facegan.pack import other_archives

    for old in other_archives(archive):  # an earlier run with another --student: never hand in the wrong one
        log(f"      warning: {old} is still here from an earlier run (another --student?); hand in {archive.name} "
            f"and delete {old.name}")

    run = RunResult(out, cache, ref, ckpt, samples, archive, result.fid, result.b.stats.n, floor)
    score = {"fid": result.fid, "n_samples": result.a.stats.n, "n_reference": result.b.stats.n,
             "floor": floor, "checkpoint": str(ckpt), "reference": str(ref), "archive": str(archive), "key": key,
             "archive_mb": round(report.bytes / 1e6, 2)}
    atomic_write_text(out / "score.json", json.dumps(score, indent=1))
    return _report(run, result.a.stats.n, floor, report.bytes, cfg, log)


def _reusable_score(path: Path, key: dict, samples: Path, archive: Path, n: int) -> dict | None:
    """The saved score when it was made from this very checkpoint, reference, count and student
    number and its samples and archive are still there; else None."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if saved.get("key") != key or not archive.is_file() or not samples.is_dir():
        return None
    if sum(1 for p in samples.iterdir() if p.suffix == ".png") != n:
        return None
    return saved


def _report(run: RunResult, n_samples: int, floor: dict | None, archive_bytes: int | None, cfg: RunConfig,
            log: Callable[[str], None]) -> RunResult:
    """The closing lines of ``facegan run``: the score beside the floor and where everything is."""
    out, samples, archive = run.out, run.samples, run.archive
    floor_txt = ""
    if floor:
        spread = f" ± {floor['std']:.2f} over {floor['splits']} splits" if floor["splits"] > 1 else " (one split)"
        floor_txt = (f"; real photos score {floor['mean']:.2f}{spread} "
                     f"({floor['n_sample']} vs the other {floor['n_rest']})")
    log("")
    ref_text = f"{run.n} reference photos" if run.n else "a reference of unknown size"
    if not floor:
        floor_txt = (f"; real-data floor not measured (needs {2 * n_samples} photos; about 16.4 on CelebA "
                     "with 10,000)")
    log(f"FID@{n_samples} = {run.fid:.2f} (vs {ref_text}){floor_txt}")
    verdict = "below" if run.fid < TARGET_FID else "not yet below"
    log(f"  target    FID@1k below {TARGET_FID:g} (the brief): {verdict}")
    log(f"  samples   {samples}/  (grid: {out}/grid-*.png, curves: {out}/curves.png)")
    how = f"{archive_bytes / 1e6:.1f} MB, verified" if archive_bytes is not None else "packed and verified in an earlier run"
    log(f"  archive   {archive}  ({how})")
    kept = ", best.pt" if (out / "best.pt").is_file() else ""
    log(f"  run       {out}/  (config.json, stats.jsonl, last.pt{kept}, score.json)")
    if cfg.student == "student_number":
        log("  rename the archive to your student number, or rerun with --student 20251234")
    return run


def _inception_s(scorer: Any, n: int) -> str:
    """``"40 s"``: the expected time of an Inception pass over ``n`` images, timed on a few."""
    from facegan.train.scoring import inception_seconds

    return _duration(inception_seconds(scorer, n))


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


__all__ = ["RunConfig", "RunResult", "run_pipeline"]
