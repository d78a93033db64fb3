"""FID in its own process (:mod:`facegan.fid.background`): same number as in-process, the trainer
is never blocked, Ctrl-C and failures are the trainer's to handle, close() stops it at once.

The child scores with the grading tests' stand-in network (:class:`gradekit.StandIn`), so each
test costs a process start (~2 s for torch's import), not an Inception pass."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from facegan.errors import FaceganError
from facegan.fid.background import BackgroundFid
from facegan.fid.distance import frechet_distance
from gradekit import StandIn, images


class SlowStandIn(StandIn):
    """The stand-in, taking ``delay`` seconds per score (a long Inception pass)."""

    delay = 3.0

    def statistics(self, images, total=None, **provenance):
        time.sleep(self.delay)
        return super().statistics(images, total, **provenance)


class EndlessStandIn(SlowStandIn):
    delay = 600.0


class BrokenStandIn(StandIn):
    def statistics(self, images, total=None, **provenance):
        raise ValueError("features went wrong")


@pytest.fixture
def ref(tmp_path):
    path = tmp_path / "ref.npz"
    StandIn().statistics(images(1, 300)).save(path)
    return path


def test_the_background_score_is_the_in_process_score(ref):
    from facegan.fid.stats import Stats

    fake = images(2, 200, brightness=20)
    with BackgroundFid(ref, make_scorer=StandIn) as bg:
        bg.submit(fake, tag="kimg 1")
        got = bg.poll(wait=True)
    stats, r = StandIn().statistics(fake), Stats.load(ref)
    want = frechet_distance(stats.mu, stats.sigma, r.mu, r.sigma)
    assert got.tag == "kimg 1" and got.seconds >= 0
    # Same code and data, but the child runs one BLAS thread and this process may run more: the
    # covariances' sums may be ordered differently (relative changes ~ n·eps = 200 · 1.1e-16);
    # the matrix square root of the 64x64 product can amplify that by its condition number
    # (< 1e4 for these well-spread features), far below 1e-8 of the distance.
    assert got.fid == pytest.approx(want, rel=1e-8)


def test_the_trainer_is_not_blocked_while_it_scores(ref):
    with BackgroundFid(ref, make_scorer=SlowStandIn) as bg:
        assert bg.poll() is None and not bg.busy  # nothing submitted: nothing to collect
        bg.submit(images(3, 50))
        t = time.perf_counter()
        assert bg.poll() is None  # still running: poll answers at once
        assert time.perf_counter() - t < 1.0
        assert bg.busy
        with pytest.raises(RuntimeError, match="already in flight"):
            bg.submit(images(4, 50))
        assert bg.poll(wait=True).fid > 0
        assert not bg.busy and bg.poll() is None  # collected once


def test_ctrl_c_is_the_trainers_not_the_scorers(ref):
    with BackgroundFid(ref, make_scorer=SlowStandIn) as bg:
        bg.submit(images(5, 50))
        time.sleep(0.5)
        os.kill(bg._proc.pid, signal.SIGINT)  # the terminal sends Ctrl-C to the whole group
        assert np.isfinite(bg.poll(wait=True).fid)


def test_a_failing_scorer_is_one_clear_error(ref):
    with BackgroundFid(ref, make_scorer=BrokenStandIn) as bg:
        bg.submit(images(6, 20))
        with pytest.raises(FaceganError, match="FID process failed: ValueError: features went wrong"):
            bg.poll(wait=True)


def test_a_missing_reference_is_said_when_the_score_is_collected(tmp_path):
    with BackgroundFid(tmp_path / "absent.npz", make_scorer=StandIn) as bg:
        with pytest.raises(FaceganError, match="FID process (failed|stopped)"):
            bg.submit(images(7, 20))
            bg.poll(wait=True)


def test_close_stops_a_score_in_flight(ref):
    bg = BackgroundFid(ref, make_scorer=EndlessStandIn)
    bg.submit(images(8, 20))
    time.sleep(0.5)
    bg.close()  # would take 600 s if it waited for the score
    assert not bg._proc.is_alive() and not bg.busy
