"""Both cores of a laptop: 1 vs 2 training threads, and what the second core does for FID.

``facegan run --preset cpu`` on a two-core machine can spend the second core two ways:

* **today's way** — train on 2 threads and stop to score FID (on 2 threads) now and then;
* **FID beside training** — train on 1 thread while the other core scores in a process of its own
  (:mod:`facegan.fid.background`): scoring then costs no training time at all.

Which is better depends on how much the second thread adds to training (little, for the small
``cpu`` network, on some CPUs) and how much the two processes slow each other (shared caches and
memory bandwidth). This script measures the four numbers that decide it, in one run, in
alternating windows so that other load hits every side alike:

* training img/s of ``facegan train --preset cpu`` with ``--threads 1``, ``--threads 2``, and
  ``--threads 1`` while an Inception process scores on the other core;
* Inception img/s with 2 threads alone (today's inline FID) and with 1 thread beside training.

From them: training images per wall-clock second in a run that gives ``--fid-share`` of its time
to FID today, against one that scores beside training; and how long one FID@1k takes each way.

    python bench/cpu_cores.py [--seconds 60] [--rounds 2] [--fid-share 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import ROOT, add_data_arguments, build_cache, machine_report  # bench/ is on sys.path as a script

#: A process that runs the FID Inception on ``threads`` threads until killed, writing its img/s.
INCEPTION_LOOP = textwrap.dedent("""
    import sys, time, numpy as np, torch
    from facegan.runtime import configure_torch
    from facegan.fid.features import FIDScorer
    threads, out = int(sys.argv[1]), sys.argv[2]
    configure_torch("cpu", threads, scoring=True)
    scorer = FIDScorer("cpu")
    images = np.random.default_rng(0).integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    scorer.batch_features(images[:8])  # warm-up
    done, t0 = 0, time.perf_counter()
    while True:
        scorer.batch_features(images)
        done += len(images)
        with open(out, "w") as f:
            f.write(f"{done / (time.perf_counter() - t0)}\\n")
""")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def train_window(cache: Path, out: Path, threads: int, seconds: float, seed: int) -> float:
    """Training img/s of ``facegan train --preset cpu`` over ``seconds`` (ticks after the first,
    so the warm-up and the first grid are not counted)."""
    cmd = [sys.executable, "-m", "facegan", "train", "--data", str(cache), "--out", str(out), "--preset", "cpu",
           "--threads", str(threads), "--minutes", f"{seconds / 60:.4f}", "--seed", str(seed),
           "--tick-kimg", "1", "--ckpt-minutes", "1000", "--grid-kimg", "100000"]
    subprocess.run(cmd, env=_env(), check=True, stdout=subprocess.DEVNULL)
    ticks = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    ticks = [t for t in ticks if "img_per_s" in t]
    if len(ticks) < 2:
        raise SystemExit(f"{out}: no tick after the first; give --seconds more")
    # each tick line: kimg at its end and the img/s of its training steps
    imgs = [1000.0 * (b["kimg"] - a["kimg"]) for a, b in zip(ticks, ticks[1:])]
    secs = [n / b["img_per_s"] for n, b in zip(imgs, ticks[1:])]
    return sum(imgs) / sum(secs)


class Inception:
    """An Inception process running beside the window (``with``); ``rate`` its img/s."""

    def __init__(self, threads: int, tmp: Path):
        self.threads, self.path = threads, tmp / f"inception-{threads}.txt"

    def __enter__(self) -> "Inception":
        self.path.unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", INCEPTION_LOOP, str(self.threads), str(self.path)],
                                     env=_env())
        while not self.path.exists():  # started and warmed up
            time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()
        self.rate = float(self.path.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(ap)
    ap.add_argument("--seconds", type=float, default=60.0, help="training seconds per window (default 60)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating windows per side (default 2)")
    ap.add_argument("--fid-share", type=float, default=0.1, help="share of a run's time today's inline FID takes")
    ap.add_argument("--fid-n", type=int, default=1000)
    args = ap.parse_args()
    print(machine_report(), flush=True)
    cache = build_cache(args.photos, args.cache)
    rates: dict[str, list[float]] = {"1 thread": [], "2 threads": [], "1 thread + FID beside": []}
    fid2: list[float] = []
    fid1_beside: list[float] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for r in range(args.rounds):
            rates["1 thread"].append(train_window(cache, tmp / f"t1-{r}", 1, args.seconds, r))
            rates["2 threads"].append(train_window(cache, tmp / f"t2-{r}", 2, args.seconds, r))
            with Inception(1, tmp) as inc:
                rates["1 thread + FID beside"].append(train_window(cache, tmp / f"t1f-{r}", 1, args.seconds, r))
            fid1_beside.append(inc.rate)
            with Inception(2, tmp) as inc:
                time.sleep(min(args.seconds, 30.0))
            fid2.append(inc.rate)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} img/s" for k, v in rates.items())
                  + f"; Inception 2 threads alone {fid2[-1]:.1f} img/s, 1 thread beside training "
                  f"{fid1_beside[-1]:.1f} img/s", flush=True)
    mean = {k: sum(v) / len(v) for k, v in rates.items()}
    i2, i1 = sum(fid2) / len(fid2), sum(fid1_beside) / len(fid1_beside)
    s1, s2, s1b = mean["1 thread"], mean["2 threads"], mean["1 thread + FID beside"]
    print(f"\ntraining img/s (cpu preset), mean of {args.rounds} windows of {args.seconds:.0f} s:")
    print(f"  1 thread {s1:.1f} | 2 threads {s2:.1f} ({s2 / s1:.2f}x of 1) | 1 thread with FID beside "
          f"{s1b:.1f} ({s1b / s1:.2f}x of 1 alone)")
    print(f"FID@{args.fid_n}'s Inception: 2 threads alone {i2:.1f} img/s ({args.fid_n / i2:.0f} s a score) | "
          f"1 thread beside training {i1:.1f} img/s ({args.fid_n / i1:.0f} s a score)")
    today = s2 * (1 - args.fid_share)
    print(f"a run that scores: today (2 threads, FID inline in {args.fid_share:.0%} of the time) {today:.1f} "
          f"training img/s | FID beside (1 thread) {s1b:.1f} img/s = {s1b / today:.2f}x, and a score every "
          f"{args.fid_n / i1:.0f} s instead of within {args.fid_share:.0%} of the time")


if __name__ == "__main__":
    main()
