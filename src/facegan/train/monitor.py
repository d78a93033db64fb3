"""Seeing a run: stats.jsonl, a progress bar or tick lines, sample grids, curves, TensorBoard,
the tick's sums of a step's named scalars and the NaN/inf guard on them.

Named ``monitor`` rather than ``logging`` so it never shadows the standard library module.
Everything here runs on rank 0 only and never touches a random generator, so watching a run
cannot change it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facegan.grids import grid_image, save_grid


def read_stats(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a stats.jsonl (a torn last line from a crash is ignored).

    The file is read back as untrusted: a line that is not UTF-8 JSON of an object with a numeric
    ``kimg`` (an edit, a damaged disk) is skipped, with one warning on stderr.
    """
    rows, damaged = [], 0
    p = Path(path)
    if p.is_file():
        lines = p.read_bytes().splitlines()
        for i, line in enumerate(lines):
            try:
                row = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                damaged += i < len(lines) - 1  # a torn last line is a crash's, not damage
                continue
            kimg = row.get("kimg", 0) if isinstance(row, dict) else None
            if not isinstance(kimg, (int, float)) or isinstance(kimg, bool):
                damaged += 1
                continue
            rows.append(row)
    if damaged:
        import sys

        print(f"facegan: warning: {p}: skipped {damaged} damaged line(s)", file=sys.stderr)
    return rows


#: The brief's target: FID@1k below this (drawn on curves.png, printed beside training's scores).
TARGET_FID = 20.0

#: How the step's named scalars are shown in tick lines (name -> label), in this order.
TICK_LABELS: dict[str, str] = {"loss_d": "D", "loss_g": "G", "d_real": "D(x)", "d_fake": "D(G(z))", "r1": "R1",
                               "augment_p": "p", "r_t": "r_t"}
_BOOKKEEPING = frozenset({"time", "kimg", "step", "img_per_s", "elapsed_s", "eta_s"})


def plot_curves(stats_path: str | os.PathLike, out_png: str | os.PathLike) -> Path | None:
    """Plot every logged scalar against thousands of images: losses (``loss_*``), the other step
    scalars (D's outputs, R1, augmentation), and FID where scored; None without data."""
    rows = read_stats(stats_path)
    ticks = [r for r in rows if "img_per_s" in r and "event" not in r]
    fids = [r for r in rows if r.get("fid") is not None]
    names = [k for k in dict.fromkeys(k for r in ticks for k in r) if k not in _BOOKKEEPING]
    losses = [k for k in names if k.startswith("loss")]
    others = [k for k in names if not k.startswith("loss")
              and all(isinstance(r.get(k, 0.0), (int, float)) and not isinstance(r.get(k), bool) for r in ticks)]
    panels = [("loss (mean over tick)", losses)] * bool(losses) + [("D outputs / regularisers", others)] * bool(others)
    if not panels and not fids:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = len(panels) + bool(fids)
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4), squeeze=False)
    for ax, (ylabel, keys) in zip(axes[0], panels):
        for k in keys:
            pts = [(r["kimg"], r[k]) for r in ticks if k in r]
            ax.plot([x for x, _ in pts], [y for _, y in pts], label=TICK_LABELS.get(k, k), marker="." if len(pts) < 3 else None)
        ax.set_xlabel("thousands of images")
        ax.set_ylabel(ylabel)
        ax.legend()
        ax.grid(alpha=0.3)
    if fids:
        ax = axes[0][-1]
        ax.plot([r["kimg"] for r in fids], [r["fid"] for r in fids], "o-", label=f"FID@{fids[-1].get('fid_n', '?')}")
        floor = fids[-1].get("fid_floor")
        if floor is not None:
            ax.axhline(floor, color="gray", ls="--", label=f"real-data floor {floor:.1f}")
        ax.axhline(TARGET_FID, color="green", ls=":", label=f"the brief's target {TARGET_FID:g}")
        ax.set_xlabel("thousands of images")
        ax.set_ylabel("FID")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


class TensorBoard:
    """Scalars to TensorBoard when the ``tensorboard`` package is installed; silently off otherwise."""

    def __init__(self, logdir: str | os.PathLike):
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: nothing to write to
            return
        self.writer = SummaryWriter(str(logdir))

    def scalars(self, values: dict[str, Any], nimg: int) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            # the x axis is images seen; the record's own counters and wall time are no curves
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("kimg", "step", "time"):
                self.writer.add_scalar(k, v, nimg)

    def image(self, tag: str, image: np.ndarray, nimg: int) -> None:
        """A uint8 (H, W, 3) picture (a sample grid) at ``nimg`` images."""
        if self.writer is not None:
            self.writer.add_image(tag, image, nimg, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Monitor:
    """One run's outputs on rank 0: stats.jsonl lines, a tqdm bar (or printed ticks), TensorBoard.

    Args:
        out: the run folder.
        total_img: images to train for (None when only minutes limit the run).
        total_seconds: seconds to train for (None when only kimg limits it).
        start_img, start_seconds: where a resumed run starts.
        enabled: False on ranks other than 0.
        bar: use a tqdm bar when stderr is a terminal (otherwise print one line per tick).
    """

    def __init__(
        self,
        out: Path,
        *,
        total_img: int | None,
        total_seconds: float | None,
        start_img: int = 0,
        start_seconds: float = 0.0,
        enabled: bool = True,
        bar: bool = True,
    ):
        self.out, self.enabled = out, enabled
        self.total_img, self.total_seconds = total_img, total_seconds
        self.stats_path = out / "stats.jsonl"
        self.last_img = start_img
        self.bar = None
        self.tb = TensorBoard(out / "tb") if enabled else None
        self.by_time = total_img is None and total_seconds is not None
        if enabled and bar and sys.stderr.isatty():
            from tqdm.auto import tqdm

            # One speed (img/s, in the tick's postfix), the total and the percentage; with only
            # --minutes the bar counts seconds of training, so the time left moves at every step.
            if self.by_time:  # in minutes: "12.5/60 min"
                self.bar = tqdm(total=total_seconds / 60, initial=start_seconds / 60, dynamic_ncols=True,
                                smoothing=0.1, desc="train",
                                bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.1f}/{total:g} min "
                                           "[{remaining} left]{postfix}")
            else:
                self.bar = tqdm(total=total_img, initial=start_img, unit="img", unit_scale=True, dynamic_ncols=True,
                                smoothing=0.1, desc="train",
                                bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} img "
                                           "[{elapsed}<{remaining}]{postfix}")
        self.last_seconds = start_seconds

    def eta(self, nimg: int, seconds: float, rate: float) -> float | None:
        """Seconds left: the sooner of the image and the time limits."""
        left = []
        if self.total_img is not None and rate > 0:
            left.append((self.total_img - nimg) / rate)
        if self.total_seconds is not None:
            left.append(self.total_seconds - seconds)
        return max(0.0, min(left)) if left else None

    def step(self, nimg: int, seconds: float | None = None) -> None:
        """After each step: ``nimg`` images and ``seconds`` of training so far (both across resumes)."""
        if self.bar is not None:
            if self.by_time:
                if seconds is not None:
                    self.bar.update(min(seconds, self.total_seconds) / 60 - self.bar.n)
            else:
                self.bar.update(nimg - self.last_img)
        self.last_img = nimg
        if seconds is not None:
            self.last_seconds = seconds

    def tick(self, record: dict[str, Any]) -> None:
        """Append ``record`` to stats.jsonl and show it."""
        if not self.enabled:
            return
        self.log(record)
        eta = record.get("eta_s")
        scalars = "  ".join(f"{label} {record[k]:.3f}" for k, label in TICK_LABELS.items() if k in record)
        short = f"kimg {record['kimg']:.1f}  {record['img_per_s']:.0f} img/s  {scalars}" + (
            f"  ETA {format_duration(eta)}" if eta is not None else "")
        if self.bar is not None:  # short, so the bar keeps its width: the rest is in stats.jsonl
            losses = ", ".join(f"{TICK_LABELS[k]} {record[k]:.2f}" for k in ("loss_d", "loss_g") if k in record)
            self.bar.set_postfix_str(
                (f"kimg {record['kimg']:.1f}, " if self.by_time else "") + f"{record['img_per_s']:.0f} img/s"
                + (f", {losses}" if losses else "")
            )
        else:
            print(short, flush=True)

    def grid(self, images: np.ndarray, path: Path, caption: str, nimg: int) -> None:
        """Save a sample grid (captioned) and show it in TensorBoard."""
        if not self.enabled:
            return
        save_grid(images, path, caption=caption)
        if self.tb is not None:
            self.tb.image("samples", grid_image(images), nimg)

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to stats.jsonl (and the numbers to TensorBoard)."""
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), **record}
        with open(self.stats_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            self.tb.scalars(record, int(record.get("kimg", 0) * 1000))

    def message(self, text: str) -> None:
        """A line for the user that does not break the bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None


class Scalars:
    """Sums of a step's named scalars over a tick, kept on the device (no sync per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.latest: dict[str, float] = {}
        self.n = 0

    def add(self, values: dict[str, torch.Tensor | float]) -> None:
        self.n += 1
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                v = v.detach().float()
                self.sums[k] = self.sums[k] + v if k in self.sums else v
                self.counts[k] = self.counts.get(k, 0) + 1
            else:  # plain numbers (a probability that adapts): the latest value is what matters
                self.latest[k] = float(v)

    def means(self) -> dict[str, float]:
        keys = list(self.sums)
        vals = torch.stack([self.sums[k] for k in keys]).tolist() if keys else []  # one sync per tick
        return {**{k: v / self.counts[k] for k, v in zip(keys, vals)}, **self.latest}

    def reset(self) -> None:
        self.sums, self.counts, self.latest, self.n = {}, {}, {}, 0


def guard_finite(means: dict[str, float], n: int, pr: Any, last: Path, info: Any, mon: Monitor) -> None:
    """Stop every rank with a clear message if a loss went NaN/inf since the last tick."""
    from facegan.errors import FaceganError
    import facegan.train.distributed as dist_util

    bad = not all(math.isfinite(v) for v in means.values())
    if dist_util.any_rank(bad, info):
        mon.log({"event": "nan", "kimg": pr.nimg / 1000, "step": pr.step})
        kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint had been written yet"
        raise FaceganError(
            f"a loss became NaN/inf within the {n} steps before step {pr.step} (kimg {pr.nimg / 1000:.1f}); "
            f"training stopped and {kept}. Try lower learning rates, --precision fp32, or resume from it."
        )
