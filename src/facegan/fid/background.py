"""FID in a process of its own: score images on a spare core while training goes on.

On a two-core laptop the ``cpu`` preset may train about as fast on one thread as on two, and
the Inception network then costs the run minutes it could train (one FID@1k took 167 s on one
AMD EPYC Zen 3 core). :class:`BackgroundFid` runs the scoring in one child process with its own
thread count: the trainer samples the images (cheap for a small generator), hands them over and
goes on; the distance comes back some ticks later.

Arrays in, a float out: the child never sees a model or a checkpoint, only uint8 images, so
what it scores is exactly what the trainer sampled, and it cannot touch the training's random
state. The child ignores Ctrl-C (the trainer decides what an interrupt means) and dies with
the parent.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from facegan.errors import FaceganError

def _default_scorer() -> Any:
    from facegan.fid.features import FIDScorer

    return FIDScorer("cpu")


def _child(conn: Any, ref_path: str, threads: int, make_scorer: Callable[[], Any]) -> None:
    """The scoring process: its own thread count, no Ctrl-C; scores each array it receives
    against the reference and sends back ``("ok", fid, seconds)`` or ``("error", text)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from facegan.fid.distance import frechet_distance
    from facegan.fid.stats import Stats
    from facegan.runtime import configure_torch

    configure_torch("cpu", threads, scoring=True)
    try:
        scorer, ref = make_scorer(), Stats.load(ref_path)
    except Exception as exc:  # noqa: BLE001 - said to the parent, which decides
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            images = conn.recv()
        except EOFError:  # the parent is gone
            return
        if images is None:
            return
        t = time.perf_counter()
        try:
            stats = scorer.statistics(images)
            fid = frechet_distance(np.asarray(stats.mu), np.asarray(stats.sigma), ref.mu, ref.sigma)
            conn.send(("ok", float(fid), time.perf_counter() - t))
        except Exception as exc:  # noqa: BLE001
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


@dataclass
class Scored:
    """A score that came back: what was submitted with it, the FID and the child's seconds."""

    tag: Any
    fid: float
    seconds: float


class BackgroundFid:
    """One scoring process fed uint8 images; at most one score in flight.

    Args:
        ref: reference statistics (.npz) the images are scored against.
        threads: torch threads of the child (the cores the trainer leaves free).
        make_scorer: a picklable factory of the scorer (anything with ``statistics(uint8) ->
            stats`` having ``mu``/``sigma``); default: the FID Inception on the CPU.
    """

    def __init__(self, ref: str | os.PathLike, *, threads: int = 1,
                 make_scorer: Callable[[], Any] = _default_scorer):
        # spawn, not fork: a forked copy of a trainer would inherit its threads' locks and memory
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child_conn, str(ref), threads, make_scorer),
                                 name="facegan-fid", daemon=True)  # daemon: dies with the trainer
        self._proc.start()
        child_conn.close()
        self._tag: Any = None
        self._busy = False

    @property
    def busy(self) -> bool:
        """A score is in flight (submitted, not yet collected by :meth:`poll`)."""
        return self._busy

    def submit(self, images: np.ndarray, tag: Any = None) -> None:
        """Start scoring ``images`` (uint8 (N, H, W, 3)); ``tag`` comes back with the result."""
        if self._busy:
            raise RuntimeError("a score is already in flight; poll() it first")
        try:
            self._conn.send(np.ascontiguousarray(images, dtype=np.uint8))
        except OSError:  # the child is gone (it failed to start, or was killed)
            raise FaceganError(f"the FID process stopped (exit code {self._proc.exitcode})") from None
        self._tag, self._busy = tag, True

    def poll(self, wait: bool = False) -> Scored | None:
        """The finished score (once), or None while it runs (or when nothing was submitted);
        ``wait`` blocks until it is done. A scorer that failed is a :class:`FaceganError`."""
        if not self._busy or not (wait or self._conn.poll()):
            return None
        self._busy = False
        try:
            reply = self._conn.recv()
        except EOFError:
            raise FaceganError(f"the FID process stopped (exit code {self._proc.exitcode})") from None
        if reply[0] != "ok":
            raise FaceganError(f"the FID process failed: {reply[1]}")
        return Scored(self._tag, reply[1], reply[2])

    def close(self) -> None:
        """Stop the child at once (an unfinished score is dropped)."""
        self._busy = False
        if self._proc.is_alive():
            self._proc.terminate()  # an Inception pass would otherwise run to its end
        self._proc.join()
        self._conn.close()

    def __enter__(self) -> "BackgroundFid":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
