"""Quality: presets trained for a fixed time on the shared photos, each scored by FID@1k.

For each ``--presets`` entry (one after another, on the same machine, in one script run), trains
through ``facegan.train.entry`` (preset, speed check, loop) for ``--minutes`` on the 64x64 cache of
``../shared/data/celeba-10k``, then scores:

* FID@1k of the 1,000 images ``facegan sample`` hands in (seeds 0…999, EMA) against
  ``celeba-10k-stats.npz``, beside the real-data floor (1,000 real photos vs the other 9,000: 16.43);
* the curve: FID@1k against images seen, from EMA snapshots taken during training on the
  selection seeds (1,000,000 and up: disjoint from the handed-in ones); snapshot sampling counts
  against the run's minutes, scoring happens after training;
* a copy check: each sample's RMS pixel distance to its nearest training photo, beside the same
  for real photos to their nearest other photo (a copier would sit far below).

Then the winner is trained again with ``--repeat`` other seeds, for the run-to-run spread.

An entry may add overrides to its preset, ``+``-separated, to measure one knob against the preset
in the same run (``g.``/``d.`` name a network's option)::

    python bench/quality.py --presets dcgan,cpu,gpu --minutes 20 [--repeat 1] [--json results.json]
    python bench/quality.py --presets cpu,cpu+batch=64,cpu+augment=none+g.ngf=64 --minutes 10 --repeat 0

``@SEED`` and ``:MINUTES`` name an entry's seed and length; ``--jobs 2`` runs two at once, each pinned
to its own core with one thread (a 60-minute run beside the 20-minute table)::

    python bench/quality.py --presets cpu:60,cpu,dcgan,cpu@1,gpu --minutes 20 --jobs 2 --repeat 0

Each run's folder (under the "runs in" folder printed first) keeps what scoring needs — ``last.pt``,
the curve's snapshots as ``curve-*.npy``, ``run.json`` — and gets its row as ``row.json``; if the
scoring of an hour's run is cut short, score the folders again without training::

    python bench/quality.py --rescore /tmp/facegan-quality-XXXX [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import add_data_arguments, build_cache, snapshot_files  # bench/ is on sys.path when run as a script
from _scoring import FLOOR_1K, REF, Scorer, copy_check


def parse_variant(entry: str) -> tuple[str, dict]:
    """``"cpu+batch=64+g.ngf=32"`` -> ``("cpu", {"batch": 64, "g": {"ngf": 32}})`` (values read as JSON
    where they parse, else as strings)."""
    preset, *sets = entry.split("+")
    given: dict = {}
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--presets {entry!r}: {item!r} is not KEY=VALUE")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        net, dot, field = key.partition(".")
        if dot:
            given.setdefault(net, {})[field] = value
        else:
            given[key.replace("-", "_")] = value
    return preset, given


def train_run(preset: str, seed: int, minutes: float, cache: Path, out: Path, curve_points: int, device: str,
              threads: int | None) -> dict:
    """Train one entry into ``out``; keep the curve's EMA snapshots there as uint8 ``curve-*.npy``
    and the run's facts as ``run.json``, so that scoring can be redone (``--rescore``) if it is cut."""
    from facegan.models.sampling import selection_seeds
    from facegan.train.autotune import tune_run
    from facegan.train.entry import resolve_config, run_training

    name, given = parse_variant(preset)
    cfg = resolve_config(dict(given, preset=name, data=str(cache), out=str(out), minutes=minutes, seed=seed,
                              device=device, threads=threads, progress=False))
    marks = [minutes * 60 * (k + 1) / curve_points for k in range(curve_points - 1)]  # the last point: the end

    def on_tick(progress, sampler) -> None:
        if marks and progress.elapsed >= marks[0]:
            marks.pop(0)
            np.save(out / f"curve-{progress.nimg:09d}.npy", sampler()(selection_seeds(1000)))

    t = time.perf_counter()
    tuned = tune_run(cfg)  # timed here (not inside run_training) to report what it chose
    res = run_training(cfg, tuned=tuned, tune=False, on_tick=on_tick)
    row = {"preset": preset, "seed": seed, "kimg": res.nimg / 1000, "minutes": res.elapsed / 60,
           "img_per_s": res.nimg / max(res.elapsed, 1e-9), "speed": tuned.best.describe() if tuned else "as given",
           "train_wall_min": (time.perf_counter() - t) / 60}
    (out / "run.json").write_text(json.dumps(row, indent=1))
    print(f"  {preset} seed {seed}: trained {row['kimg']:.1f} kimg in {row['minutes']:.1f} min; scoring ...",
          flush=True)
    return row


def run_facts(out: Path) -> dict:
    """A trained run's facts: its ``run.json``, or for a folder trained before ``run.json`` existed,
    rebuilt from ``config.json`` and the ``done`` line of ``stats.jsonl`` (the entry's name from the
    folder's, ``+`` shown as ``_``)."""
    from facegan.train.monitor import read_stats

    if (out / "run.json").is_file():
        return json.loads((out / "run.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    lines = read_stats(out / "stats.jsonl")
    done = next((x for x in reversed(lines) if x.get("event") == "done"), None)
    if done is None:
        raise SystemExit(f"{out}: training did not finish (no 'done' line in stats.jsonl); resume it with "
                         f"facegan train --resume {out}")
    speed = next((x["chosen"] for x in lines if x.get("event") == "speed"), "as given")
    return {"preset": out.name.rsplit("-s", 1)[0], "seed": cfg["seed"], "kimg": done["kimg"],
            "minutes": done["elapsed_s"] / 60, "img_per_s": done["kimg"] * 1000 / max(done["elapsed_s"], 1e-9),
            "speed": speed}


def score_run(out: Path, facts: dict, scorer: Scorer, train: np.ndarray) -> dict:
    """Score a trained run folder (``facts``: :func:`train_run`'s or :func:`run_facts`' row): FID@1k of
    seeds 0…999 from ``last.pt`` (EMA), the curve from the kept snapshots plus the end on the
    selection seeds, the copy check; written to ``row.json``."""
    from facegan.models.sampling import selection_seeds
    from facegan.sample import load_sampler

    row = dict(facts)
    t = time.perf_counter()
    S = load_sampler(out / "last.pt", "ema")
    final = S(list(range(1000)))
    snaps = [(kimg, np.load(f)) for kimg, f in snapshot_files(out)]
    snaps.append((row["kimg"], S(selection_seeds(1000))))
    row.update(fid=scorer.fid(final), curve=[(k, scorer.fid(x)) for k, x in snaps], copy=copy_check(final, train),
               score_wall_min=(time.perf_counter() - t) / 60)
    (out / "row.json").write_text(json.dumps(row, indent=1))
    print(f"  {row['preset']} seed {row['seed']}: FID@1k {row['fid']:.1f} (floor {FLOOR_1K}); curve "
          + ", ".join(f"{k:.0f} kimg {f:.1f}" for k, f in row["curve"]), flush=True)
    return row


def split_entries(text: str) -> list[str]:
    """Split ``--presets`` at the commas that start a new preset, so that a value may hold commas:
    ``"cpu+augment=translation,cutout,dcgan"`` -> ``["cpu+augment=translation,cutout", "dcgan"]``."""
    from facegan.train.presets import preset_names

    names, entries = set(preset_names()), []
    for part in text.split(","):
        head = part.split("+")[0].split("@")[0].split(":")[0]
        if entries and head not in names:
            entries[-1] += "," + part
        else:
            entries.append(part)
    return entries


def parse_entry(entry: str, seed: int, minutes: float) -> tuple[str, int, float]:
    """``"cpu+batch=64@1:60"`` -> ``("cpu+batch=64", 1, 60.0)``; seed and minutes default to the flags'."""
    entry, _, mins = entry.partition(":")
    entry, _, sd = entry.partition("@")
    return entry, int(sd) if sd else seed, float(mins) if mins else minutes


_WORKER: dict = {}  # one per process: the Inception scorer, the training photos, the options


def _start_worker(args: argparse.Namespace, cores) -> None:
    """Pin this process to one core of ``cores`` (a queue) and load what every run needs."""
    import os

    from facegan.images import load_uint8_array
    from facegan.runtime import configure_torch

    if cores is not None:
        os.sched_setaffinity(0, {cores.get()})
    configure_torch(args.device if args.device != "auto" else "cpu", args.threads)
    cache = build_cache(args.photos, args.cache)
    _WORKER.update(args=args, cache=cache, train=np.asarray(load_uint8_array(cache)),
                   scorer=Scorer(args.ref, "cpu" if args.device == "auto" else args.device))


def _run(job: tuple[str, int, float, Path]) -> dict:
    preset, seed, minutes, out = job
    w = _WORKER
    facts = train_run(preset, seed, minutes, w["cache"], out, w["args"].curve_points, w["args"].device,
                      w["args"].threads)
    return score_run(out, facts, w["scorer"], w["train"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="dcgan,cpu,gpu",
                    help="comma-separated entries PRESET[+KEY=VALUE...][@SEED][:MINUTES] (default dcgan,cpu,gpu); "
                         "a value may hold commas (+augment=translation,cutout)")
    ap.add_argument("--minutes", type=float, default=20.0, help="training time per run (default 20)")
    ap.add_argument("--repeat", type=int, default=1, help="extra seeds of the winner (default 1)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first run of each preset (default 0)")
    ap.add_argument("--curve-points", type=int, default=2, help="FID points per run incl. the end (default 2)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs at once, each pinned to its own core with --threads 1 (default 1: one after another); "
                         "the winner's --repeat runs need --jobs 1 (name them as PRESET@SEED instead)")
    ap.add_argument("--ref", type=Path, default=REF)
    add_data_arguments(ap)
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: measured at the start)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--rescore", type=Path, nargs="+", default=None, metavar="RUN",
                    help="score finished runs again, from their folders (or the folder that holds them: the "
                         "'runs in' line), instead of training: when scoring was cut short, or the rows are lost")
    args = ap.parse_args()

    from facegan.devices import cpu_name

    if args.rescore:
        runs = [d for r in args.rescore for d in ([r] if (r / "last.pt").is_file() else sorted(r.iterdir()))
                if (d / "last.pt").is_file()]
        if not runs:
            raise SystemExit(f"no run folder (one with last.pt) in {', '.join(map(str, args.rescore))}")
        print(f"{cpu_name()}; scoring {len(runs)} finished run(s) again: {', '.join(d.name for d in runs)}", flush=True)
        _start_worker(args, None)
        report([score_run(d, run_facts(d), _WORKER["scorer"], _WORKER["train"]) for d in runs], args)
        return
    root = Path(tempfile.mkdtemp(prefix="facegan-quality-"))
    jobs = [parse_entry(e, args.seed, args.minutes) for e in split_entries(args.presets)]
    jobs = [(p, sd, m, root / f"{p.replace('+', '_')}-s{sd}-{m:g}min") for p, sd, m in jobs]
    build_cache(args.photos, args.cache)  # once, before any worker reads it
    print(f"{cpu_name()}; {args.minutes:g} min per run unless named; {args.jobs} at once; runs in {root}", flush=True)
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        import os

        if args.repeat:
            raise SystemExit("--repeat needs --jobs 1: name the extra seeds as PRESET@SEED instead")
        ctx = mp.get_context("spawn")
        cores = ctx.Queue()
        for c in sorted(os.sched_getaffinity(0))[:args.jobs]:
            cores.put(c)
        args.threads = 1
        with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_start_worker,
                                 initargs=(args, cores)) as pool:
            rows = list(pool.map(_run, jobs))
    else:
        _start_worker(args, None)
        rows = [_run(job) for job in jobs]
        best = min(rows, key=lambda r: r["fid"])["preset"]
        for seed in range(args.seed + 1, args.seed + 1 + args.repeat):
            rows.append(_run((best, seed, args.minutes, root / f"{best.replace('+', '_')}-s{seed}")))
    report(rows, args)


def report(rows: list[dict], args: argparse.Namespace) -> None:
    """The rows as one markdown table (FID beside the first ``dcgan`` run's), and the spread of
    presets run with several seeds; also to ``--json``."""
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    base = next((r["fid"] for r in rows if r["preset"] == "dcgan" and r["seed"] == args.seed), None)
    print("\n| preset | seed | minutes | kimg | img/s | FID@1k (seeds 0-999) | vs dcgan | floor | "
          "curve (kimg: FID@1k, seeds 1M+) | copy check median/p1 (real) |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        c = r["copy"]
        ratio = f"{r['fid'] / base:.2f}x" if base else "-"
        curve = "; ".join(f"{k:.0f}: {f:.1f}" for k, f in r["curve"])
        print(f"| {r['preset']} | {r['seed']} | {r['minutes']:.1f} | {r['kimg']:.1f} | {r['img_per_s']:.0f} | "
              f"{r['fid']:.1f} | {ratio} | {FLOOR_1K} | {curve} | {c['fake_median']:.1f}/{c['fake_p1']:.1f} "
              f"({c['real_median']:.1f}/{c['real_p1']:.1f}) |")
    groups: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        groups.setdefault((r["preset"], round(r["minutes"])), []).append(r["fid"])
    for (preset, minutes), same in groups.items():
        if len(same) > 1:
            print(f"\n{preset}, {minutes} min: FID@1k over {len(same)} seeds {np.mean(same):.1f} ± "
                  f"{np.std(same, ddof=1):.1f} (min {min(same):.1f}, max {max(same):.1f})")


if __name__ == "__main__":
    main()
