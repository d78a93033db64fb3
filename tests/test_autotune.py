"""Measured speed choices: the fastest candidate wins, fixed settings are kept, answers are
cached per machine and model shape, tuning leaves training's randomness alone, and a slowed run
re-checks its thread count."""

import json

import numpy as np
import pytest
import torch

from facegan.train import autotune
from facegan.train.autotune import Choice, ThreadWatch, tune
from facegan.train.config import TrainConfig
from fakehw import AVX2, AVX512_BF16


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "speed.json"


def cfg(tmp_path, **kw):
    base = dict(data=str(tmp_path / "c.npy"), out=str(tmp_path / "r"), kimg=1, resolution=8,
                g={"z_dim": 4, "ngf": 4}, d={"ndf": 4}, batch=8, device="cpu")
    return TrainConfig(**{**base, **kw})




def fake_timer(speeds):
    calls = []

    def timer(_cfg, _images, c: Choice) -> float:
        calls.append((c.precision, c.matmul_convs, c.threads))
        return speeds(c)

    return timer, calls


def test_the_fastest_candidate_wins_and_is_cached(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(autotune, "usable_cpus", lambda: 2)
    speeds = lambda c: {"bf16": 100, "fp32": 60}[c.precision] + (10 if c.matmul_convs == "off" else 0) + (
        25 if c.threads == 1 else 0)
    timer, calls = fake_timer(speeds)
    images = np.zeros((16, 8, 8, 3), np.uint8)
    res = tune(cfg(tmp_path), images, timer=timer, acc=AVX512_BF16)
    assert (res.best.precision, res.best.matmul_convs, res.best.threads) == ("bf16", "off", 1)
    assert res.best.img_per_s == 135 and not res.cached
    assert len(calls) == 4  # greedy: bf16/fp32, then matmul off, then 1 thread
    assert "bf16, library convs, 1 thread 135 img/s" in res.report()
    again = tune(cfg(tmp_path), images, timer=timer, acc=AVX512_BF16)
    assert again.cached and again.best == res.best and len(calls) == 4  # no second measurement
    assert "cached" in again.report()
    assert len(json.loads(cache.read_text())) == 1
    wider = tune(cfg(tmp_path, g={"z_dim": 4, "ngf": 8}), images, timer=timer, acc=AVX512_BF16)
    assert not wider.cached  # another model shape is measured anew
    fixed = tune(cfg(tmp_path, threads=2), images, timer=timer, acc=AVX512_BF16)
    assert not fixed.cached and fixed.best.threads == 2  # a fixed setting is never overridden by the cache


def test_settings_the_user_fixed_are_not_tried(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(autotune, "usable_cpus", lambda: 2)
    timer, calls = fake_timer(lambda c: 50.0)
    tune(cfg(tmp_path, precision="fp32", threads=2), np.zeros((16, 8, 8, 3), np.uint8), timer=timer)
    assert {c[0] for c in calls} == {"fp32"} and {c[2] for c in calls} == {2}
    assert not autotune.needs_tuning(cfg(tmp_path, precision="fp32", threads=1, matmul_convs="off"),
                                     torch.device("cpu"))
    assert not autotune.needs_tuning(cfg(tmp_path, precision="fp32"), torch.device("cuda"))
    assert autotune.needs_tuning(cfg(tmp_path), torch.device("cuda"))  # precision is the GPU's question


def test_real_tuning_of_a_tiny_model_keeps_the_random_streams(tmp_path, cache, one_thread):
    images = np.random.default_rng(0).integers(0, 256, (32, 8, 8, 3), dtype=np.uint8)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    res = tune(cfg(tmp_path, precision="fp32"), images)
    assert torch.equal(torch.rand(3), expected)  # the run starts from the same random state
    assert torch.get_num_threads() == threads
    assert res.best.img_per_s > 0 and all(c.img_per_s > 0 for c in res.tried)


def test_a_slowed_run_tries_the_other_thread_count_and_keeps_the_faster():
    w = ThreadWatch(expected=200.0, threads=2, cores=2)
    assert w.after_tick(190) is None and w.after_tick(90) is None  # one slow tick is not enough
    threads, why = w.after_tick(40)
    assert threads == 1 and "busier" in why
    threads, why = w.after_tick(75)  # 1 thread: faster under the load
    assert threads == 1 and "kept 1" in why
    assert w.after_tick(70) is None  # the new speed is what is expected now


def test_a_trial_that_is_not_faster_goes_back():
    w = ThreadWatch(expected=100.0, threads=2, cores=2, patience=1)
    assert w.after_tick(30)[0] == 1
    threads, why = w.after_tick(20)
    assert threads == 2 and "back to 2" in why


def test_training_logs_what_it_measured(tmp_path, cache):
    from facegan.train import training_loop
    from facegan.train.autotune import tune_run

    np.save(tmp_path / "c.npy", np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8))
    c = cfg(tmp_path, precision="fp32", progress=False, kimg=0.016, tick_kimg=0.008, bn_batches=1)
    tuned = tune_run(c)
    assert tuned is not None
    training_loop(c, tuned=tuned)
    rows = [json.loads(x) for x in (tmp_path / "r" / "stats.jsonl").read_text().splitlines()]
    speed = [r for r in rows if r.get("event") == "speed"]
    assert len(speed) == 1 and speed[0]["chosen"] == tuned.best.describe()
    assert json.loads((tmp_path / "r" / "config.json").read_text())["matmul_convs"] == "auto"  # the request stays


# ----------------------------------------------------------------------------- the cores it may use


def test_one_usable_core_means_one_thread_is_timed_and_kept(tmp_path, cache, monkeypatch):
    """Under ``taskset -c 0`` on a 2-core machine the speed check must not time (or keep) 2 threads."""
    monkeypatch.setattr(autotune.os, "cpu_count", lambda: 2)  # the machine has two
    monkeypatch.setattr("facegan.devices.os.sched_getaffinity", lambda pid: {0})  # the process may use one
    timer, calls = fake_timer(lambda c: 50.0 + c.threads)  # 2 threads would "win" if timed
    res = tune(cfg(tmp_path), np.zeros((16, 8, 8, 3), np.uint8), timer=timer, acc=AVX2)
    assert {c[2] for c in calls} == {1} and res.best.threads == 1
    assert ThreadWatch(100.0, 1).after_tick(1.0) is None  # nothing else to try on one core
