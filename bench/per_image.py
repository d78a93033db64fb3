"""Per image: FID@1k of several recipes at equal numbers of real images shown to D (one script run).

Published curves put StyleGAN2 far ahead of SN-GAN ResNets and DCGANs per image seen (issue 21,
``../shared/QUALITY-NOTES.md``). This measures it on our CPU and photos: each entry (a preset with
optional ``+KEY=VALUE`` overrides, as in ``bench/quality.py``) trains on the 64x64 cache of
``../shared/data/celeba-10k`` until the largest ``--kimg`` mark and is scored:

* the curve: at each mark, 1,000 EMA samples on the selection seeds (1,000,000 and up), FID@1k
  against ``celeba-10k-stats.npz`` beside the real-data floor (16.43);
* at the end, the 1,000 images ``facegan sample`` hands in (seeds 0…999) and the copy check;
* the spread: each entry trained again with seed + 1 and paused at the middle mark (``--no-spread``:
  not) — the same recipe of the same length, so its learning-rate decay and EMA schedule at the
  middle are those of the first seed's curve point there;
* the cost: GFLOP per image-step (D on real and fake, G through D; ``torch.utils.flop_counter``)
  and images per second on this CPU.

Each run's length is its largest mark in kimg, so the presets' learning-rate decays (a fraction
of the run's length) act over the second half of the largest mark; the curve's earlier points
come from the same run, which is what "equal images seen" means for a recipe trained once; the
spread's runs are the same recipe of the same length, paused at the middle mark.

Long curves outlast a session: every run lives in a folder under ``--root`` (printed at the
start) and keeps its snapshots there; rerunning the same command with ``--root`` resumes an
interrupted run from its ``last.pt`` and reads finished ones back. The img/s of a run trained on
more than one machine is an average over them (each run's ``segments.json`` has the parts).

    python bench/per_image.py --kimg 50,100,200                      # the default three recipes
    python bench/per_image.py --kimg 0.064 --tiny --no-score --photos DIR   # dry run: plumbing only
    python bench/per_image.py --flops                                # GFLOP per image-step only

Per CPU minute instead (60 one-core minutes of StyleGAN2-narrow against the ``cpu`` preset)::

    python bench/quality.py --presets "$(python bench/per_image.py --print-narrow):60,cpu:60" --jobs 2 --repeat 0
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # runnable without installing
from _common import add_data_arguments, build_cache, snapshot_files  # bench/ is on sys.path when run as a script

#: StyleGAN2 at its narrow CPU width (the models' defaults) with the stylegan2 preset's recipe.
NARROW = "stylegan2+g.channel_base=2048+g.channel_max=256+d.channel_base=2048+d.channel_max=256"
#: The three recipes the issue compares: StyleGAN2-narrow, the resnet `gpu` recipe, the `cpu` DCGAN.
DEFAULT_ENTRIES = f"{NARROW},gpu,cpu"
#: Networks of a dry run, per family (as in bench/gpu_quality.py).
TINY: dict[str, dict] = {
    "dcgan": {"g": {"ngf": 8}, "d": {"ndf": 8}},
    "resnet": {"g": {"ch": 4}, "d": {"ch": 4}},
    "stylegan2": {"g": {"channel_base": 64, "channel_max": 8, "z_dim": 16, "w_dim": 16},
                  "d": {"channel_base": 64, "channel_max": 8}},
}


def entry_config(entry: str, **over):
    """The TrainConfig of ``entry`` (``PRESET[+KEY=VALUE...]``) with ``over`` on top (networks merged)."""
    from quality import parse_variant

    from facegan.train import TrainConfig
    from facegan.train.presets import resolve

    name, given = parse_variant(entry)
    for net in ("g", "d"):
        if net in over:
            given[net] = {**given.get(net, {}), **over.pop(net)}
    return TrainConfig(**resolve(name, {**given, **over}))


def gflop_per_image(cfg) -> float:
    """GFLOP of one training step per real image at ``cfg``'s networks (bench/gpu_quality.py's count)."""
    import torch
    from gpu_quality import flop_per_image

    from facegan.models.registry import build

    torch.manual_seed(0)
    nets = SimpleNamespace(G=build("generator", cfg.arch, cfg.g), D=build("discriminator", cfg.arch, cfg.d))
    return flop_per_image(cfg, nets) / 1e9


def without_noise(sampler):
    """A copy of a GAN sampler with StyleGAN2's noise strengths at 0, or None where there is no
    generator with noise inputs: the no-noise column (``bench/sg2_noise.py``, RESULTS.md)."""
    import copy

    from sg2_noise import silence_noise

    from facegan.models.sampling import GeneratorSampler

    g = getattr(sampler, "generator", None)  # a GAN's sampler holds its generator
    if g is None:
        return None
    g = copy.deepcopy(g)
    return GeneratorSampler(g, batch_size=sampler.batch_size) if silence_noise(g) else None


def save_snapshot(out: Path, nimg: int, sampler) -> None:
    """The EMA samples of the selection seeds at ``nimg`` (and, for StyleGAN2, without noise)."""
    from facegan.models.sampling import selection_seeds

    np.save(out / f"curve-{nimg:09d}.npy", sampler(selection_seeds(1000)))
    quiet = without_noise(sampler)
    if quiet is not None:
        np.save(out / f"nonoise-{nimg:09d}.npy", quiet(selection_seeds(1000)))


def cpu_class() -> str:
    """This CPU and the instruction sets that decide its kernels (the model name alone does not
    tell an AVX2-only Zen 3 from an AVX-512 Zen 4)."""
    from _common import machine_report

    return ", ".join(machine_report().split("; ")[:2])


def _segments(out: Path) -> list[dict]:
    """The training sessions of a run folder so far: CPU, kimg from/to, seconds (``segments.json``)."""
    f = out / "segments.json"
    return json.loads(f.read_text()) if f.is_file() else []


def train_curve(entry: str, seed: int, marks: list[float], cache: Path, out: Path, tiny: bool, threads: int | None,
                stop_kimg: float | None = None) -> dict | None:
    """Train ``entry`` for a run of ``max(marks)`` kimg in ``out`` (paused at ``stop_kimg`` if
    given), or go on with the run already there; EMA samples (selection seeds) at each mark kept
    as ``curve-NIMG.npy``, the handed-in seeds at the end as ``final.npy``, the facts as
    ``run.json``. A finished folder is read back, not retrained. Returns None when training was
    interrupted (SIGINT/SIGTERM: ``last.pt`` is written, and a rerun with ``--root`` goes on from it)."""
    from facegan.sample import load_sampler
    from facegan.train import training_loop
    from facegan.train.entry import config_for_resume

    if (out / "run.json").is_file():
        print(f"  {entry} seed {seed}: finished earlier in {out}", flush=True)
        return json.loads((out / "run.json").read_text())
    over: dict = dict(data=str(cache), out=str(out), kimg=max(marks), seed=seed, device="cpu", threads=threads,
                      progress=False, tick_kimg=max(min(marks) / 50, 0.008), grid_kimg=max(marks), ref=None)
    if tiny:
        arch = entry_config(entry, data="x", out="x", kimg=1).arch
        over.update(TINY.get(arch, {}), batch=16, precision="fp32")
    resume = (out / "last.pt").is_file()
    cfg = config_for_resume(out, {"data": str(cache), "threads": threads}) if resume else entry_config(entry, **over)
    end = stop_kimg or max(marks)
    kept = [kimg for kimg, _ in snapshot_files(out)]
    todo = [m for m in sorted(marks) if m < end and not any(k >= m for k in kept)]

    def on_tick(progress, sampler) -> None:
        while todo and progress.nimg >= todo[0] * 1000:  # a tick may pass several marks at once
            todo.pop(0)
            save_snapshot(out, progress.nimg, sampler())

    t = time.perf_counter()
    res = training_loop(cfg, resume=resume, on_tick=on_tick, stop_nimg=None if stop_kimg is None else int(stop_kimg * 1000))
    segments = _segments(out) + [{"cpu": cpu_class(), "threads": threads, "from_kimg": (res.nimg - res.trained_img) / 1000,
                                  "to_kimg": res.nimg / 1000, "seconds": time.perf_counter() - t}]
    (out / "segments.json").write_text(json.dumps(segments, indent=1))
    if res.status == "interrupted":
        print(f"  {entry} seed {seed}: stopped at {res.nimg / 1000:.1f} kimg; go on with --root {out.parent}",
              flush=True)
        return None
    S = load_sampler(res.last, "ema")
    save_snapshot(out, res.nimg, S)
    np.save(out / "final.npy", S(list(range(1000))))
    cpus = sorted({g["cpu"] for g in segments})
    facts = {"entry": entry, "seed": seed, "kimg": res.nimg / 1000, "length_kimg": cfg.kimg, "minutes": res.elapsed / 60,
             "img_per_s": res.nimg / max(res.elapsed, 1e-9), "gflop_per_img": gflop_per_image(cfg), "cpus": cpus}
    (out / "run.json").write_text(json.dumps(facts, indent=1))
    print(f"  {entry} seed {seed}: {facts['kimg']:.1f} kimg (of a {cfg.kimg:g}-kimg run) in {facts['minutes']:.1f} min "
          f"({facts['img_per_s']:.1f} img/s on {' + '.join(cpus)})", flush=True)
    return facts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default=DEFAULT_ENTRIES,
                    help=f"comma-separated entries PRESET[+KEY=VALUE...] (default: StyleGAN2-narrow, gpu, cpu: {DEFAULT_ENTRIES})")
    ap.add_argument("--kimg", default="50,100,200", help="marks in thousands of real images (default 50,100,200)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the main runs (default 0; the spread uses seed + 1)")
    ap.add_argument("--no-spread", action="store_true", help="skip the second seed up to the middle mark")
    add_data_arguments(ap)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per core)")
    ap.add_argument("--tiny", action="store_true", help="a few channels per network: a dry run of the plumbing")
    ap.add_argument("--no-score", action="store_true", help="skip FID and the copy check (dry run without the Inception weights' time)")
    ap.add_argument("--flops", action="store_true", help="only print GFLOP per image-step of each entry and exit")
    ap.add_argument("--print-narrow", action="store_true", help="print the StyleGAN2-narrow entry and exit")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--root", type=Path, default=None,
                    help="the runs' folder: go on with the runs there (interrupted ones resume from last.pt, "
                         "finished ones are read back); default: a new temporary folder")
    args = ap.parse_args()
    if args.print_narrow:
        print(NARROW)
        return
    from quality import split_entries

    entries = split_entries(args.presets)
    if args.flops:
        for e in entries:
            cfg = entry_config(e, data="x", out="x", kimg=1)
            print(f"{e}: {cfg.arch}, {gflop_per_image(cfg):.2f} GFLOP per image-step", flush=True)
        return
    marks = sorted(float(k) for k in args.kimg.split(","))
    if not marks or marks[0] <= 0:
        raise SystemExit(f"--kimg {args.kimg!r}: give positive marks, e.g. 50,100,200")
    from facegan.images import load_uint8_array
    from facegan.runtime import configure_torch
    from _common import machine_report

    configure_torch("cpu", args.threads)
    cache = build_cache(args.photos, args.cache)
    train = np.asarray(load_uint8_array(cache))
    root = args.root or Path(tempfile.mkdtemp(prefix="facegan-per-image-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"{machine_report()}; marks {', '.join(f'{m:g}' for m in marks)} kimg; runs in {root} "
          f"(interrupted? rerun with --root {root})", flush=True)
    jobs = [(e, args.seed, None) for e in entries]
    if not args.no_spread:
        jobs += [(e, args.seed + 1, marks[len(marks) // 2]) for e in entries]
    folders = [root / f"{i}-s{sd}" for i, (e, sd, stop) in enumerate(jobs)]
    runs = []
    for (e, sd, stop), out in zip(jobs, folders):
        facts = train_curve(e, sd, marks, cache, out, args.tiny, args.threads, stop)
        if facts is None:
            raise SystemExit(f"stopped; rerun the same command with --root {root} to go on")
        runs.append(facts)

    scorer = None
    if not args.no_score:
        from _scoring import Scorer

        scorer = Scorer()
    from _scoring import FLOOR_1K, copy_check

    rows = []
    for r, out in zip(runs, folders):
        fid = (lambda x: scorer.fid(x)) if scorer else (lambda x: float("nan"))
        final = np.load(out / "final.npy")
        rows.append(r | {"curve": [(k, fid(np.load(f))) for k, f in snapshot_files(out)], "fid_final": fid(final),
                         "nonoise": [(k, fid(np.load(f))) for k, f in snapshot_files(out, "nonoise")],
                         "copy": copy_check(final, train) if scorer else None})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"\n| entry | seed | kimg trained / run length | GFLOP/img-step | img/s | minutes | trained on | curve (kimg: FID@1k, seeds 1M+; "
          f"floor {FLOOR_1K}) | FID@1k seeds 0-999 at the end |\n|---|---:|---:|---:|---:|---:|---|---|---:|")
    for r in rows:
        curve = "; ".join(f"{k:g}: {f:.1f}" for k, f in r["curve"])
        print(f"| {r['entry']} | {r['seed']} | {r['kimg']:g} / {r.get('length_kimg', r['kimg']):g} | {r['gflop_per_img']:.2f} | {r['img_per_s']:.1f} | {r['minutes']:.1f} | "
              f"{' + '.join(r.get('cpus', ['?']))} | {curve} | {r['fid_final']:.1f} |")
    for r in rows:
        if r["nonoise"]:
            print(f"{r['entry']} seed {r['seed']}, the same EMA snapshots with the noise strengths at 0 (a sampling "
                  "choice, measured on the selection seeds only): "
                  + "; ".join(f"{k:g}: {f:.1f}" for k, f in r["nonoise"]))


if __name__ == "__main__":
    main()
