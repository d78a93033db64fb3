"""The training loop end to end with tiny models: outputs, resume == straight, NaN guard, FID hook."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facegan.errors import FaceganError
from facegan.train import TrainConfig, config_for_resume, training_loop
from facegan.train.checkpoint import build_discriminator, build_generator, load


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny16.npy"
    rng = np.random.default_rng(0)
    # smooth blobs rather than pure noise, so D has something to learn
    yy, xx = np.mgrid[:16, :16]
    imgs = np.stack([
        np.stack([(128 + 120 * np.sin(xx / (2 + k % 5) + c + k)) for c in range(3)], -1) for k in range(48)
    ]).astype(np.uint8)
    imgs[::3] = rng.integers(0, 256, imgs[::3].shape, dtype=np.uint8)
    np.save(path, imgs)
    return path


def tiny(cache, out, **kw):
    base = dict(data=str(cache), out=str(out), resolution=16, g={"z_dim": 8, "ngf": 4}, d={"ndf": 4}, batch=8, precision="fp32",
                progress=False, tick_kimg=0.016, bn_batches=2, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_run_folder_has_everything(cache, tmp_path):
    res = training_loop(tiny(cache, tmp_path / "r", kimg=0.048, grid_kimg=0.032))
    out = tmp_path / "r"
    assert res.status == "done" and res.step == 6 and res.nimg == 48
    assert json.loads((out / "config.json").read_text())["g"]["ngf"] == 4
    ticks = [json.loads(x) for x in (out / "stats.jsonl").read_text().splitlines()]
    per_tick = [t for t in ticks if "loss_d" in t]
    assert [t["step"] for t in per_tick] == [2, 4, 6]  # one line per 16 images
    assert all(np.isfinite(t["loss_d"]) and t["img_per_s"] > 0 for t in per_tick)
    assert ticks[-1]["event"] == "done"
    for name in ("grid-real.png", "grid-000000032.png", "grid-000000048.png", "curves.png", "last.pt"):
        assert (out / name).is_file(), name
    # the checkpoint rebuilds its own models from the config it carries
    state = load(out / "last.pt")
    G, D = build_generator(state["config"]), build_discriminator(state["config"])
    G.load_state_dict(state["G_ema"])
    D.load_state_dict(state["D"])
    assert G(torch.randn(2, 8)).shape == (2, 3, 16, 16)
    assert state["nimg"] == 48 and len(state["rng"]) == 1


@pytest.mark.numeric
def test_resume_gives_bitwise_the_same_weights(cache, tmp_path):
    """fp32 CPU: 8 steps straight == 4 steps + resume + 4 steps (epochs of 6 steps: crosses one)."""
    kw = dict(d={"ndf": 4, "dropout": 0.2}, flip=True)  # dropout and flips: more random streams to restore
    training_loop(tiny(cache, tmp_path / "a", kimg=0.064, **kw))
    training_loop(tiny(cache, tmp_path / "b", kimg=0.032, **kw))
    cfg = config_for_resume(tmp_path / "b", {"kimg": 0.064})
    res = training_loop(cfg, resume=True)
    assert res.step == 8
    a, b = load(tmp_path / "a" / "last.pt"), load(tmp_path / "b" / "last.pt")
    for key in ("G", "D", "G_ema"):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f"{key}.{name}"
    for key in ("opt_g", "opt_d"):
        for i, s in a[key]["state"].items():
            assert torch.equal(s["exp_avg"], b[key]["state"][i]["exp_avg"])
    assert a["loader"] == b["loader"]
    # and a different seed really does give different weights (the test can fail)
    training_loop(tiny(cache, tmp_path / "c", kimg=0.064, seed=1, **kw))
    c = load(tmp_path / "c" / "last.pt")
    assert not torch.equal(a["G"]["net.0.0.weight"], c["G"]["net.0.0.weight"])


@pytest.mark.numeric
def test_stop_nimg_pauses_a_segment_of_the_full_schedule(cache, tmp_path):
    """stop_nimg ends the call at that image count with the run's own schedule (lr decay over the
    second half of kimg): paused + resumed == straight, bitwise, and the paused weights are not
    those of a run whose length was the pause point (its decay would have acted)."""
    kw = dict(lr_decay_start=0.5, kimg=0.064)
    training_loop(tiny(cache, tmp_path / "a", **kw))
    seg = training_loop(tiny(cache, tmp_path / "b", **kw), stop_nimg=32)
    assert (seg.status, seg.nimg, seg.step) == ("paused", 32, 4)
    assert json.loads((tmp_path / "b" / "stats.jsonl").read_text().splitlines()[-1])["event"] == "paused"
    paused = load(tmp_path / "b" / "last.pt")
    training_loop(tiny(cache, tmp_path / "short", **{**kw, "kimg": 0.032}))
    short = load(tmp_path / "short" / "last.pt")
    assert not torch.equal(paused["G"]["net.0.0.weight"], short["G"]["net.0.0.weight"])
    res = training_loop(config_for_resume(tmp_path / "b", {}), resume=True)
    assert (res.status, res.nimg) == ("done", 64)
    a, b = load(tmp_path / "a" / "last.pt"), load(tmp_path / "b" / "last.pt")
    for key in ("G", "D", "G_ema"):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f"{key}.{name}"


def test_resume_refuses_model_changes_and_fresh_runs_refuse_old_folders(cache, tmp_path):
    training_loop(tiny(cache, tmp_path / "r", kimg=0.016))
    with pytest.raises(FaceganError, match="cannot change --g"):
        config_for_resume(tmp_path / "r", {"g": {"ngf": 8}, "kimg": 1})
    with pytest.raises(FaceganError, match="already holds a run.*--resume"):
        training_loop(tiny(cache, tmp_path / "r", kimg=0.016))
    with pytest.raises(FaceganError, match="nothing to resume"):
        config_for_resume(tmp_path / "empty", {})


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(cache, tmp_path, monkeypatch):
    import facegan.train.losses as losses

    calls = {"n": 0}
    good = losses.LOSSES["bce"]

    def d_then_nan(real, fake):
        calls["n"] += 1
        out = good.d(real, fake)
        return out * float("nan") if calls["n"] > 5 else out

    monkeypatch.setitem(losses.LOSSES, "bce", losses.GanLoss(d_then_nan, good.g))
    out = tmp_path / "r"
    # ckpt_minutes tiny: last.pt is written at every tick (after steps 2 and 4), while losses are finite
    with pytest.raises(FaceganError, match=r"NaN/inf.*last good checkpoint .*last.pt is kept"):
        training_loop(tiny(cache, out, kimg=0.4, ckpt_minutes=1e-9))
    state = load(out / "last.pt")
    assert state["step"] == 4
    assert all(torch.isfinite(t).all() for t in state["G"].values() if t.is_floating_point())
    assert json.loads((out / "stats.jsonl").read_text().splitlines()[-1])["event"] == "nan"


def test_wrong_resolution_is_a_clear_error(cache, tmp_path):
    with pytest.raises(FaceganError, match="images are 16x16 but --resolution is 32"):
        training_loop(tiny(cache, tmp_path / "r", kimg=0.016, resolution=32))


def test_minutes_limit_stops_the_run(cache, tmp_path):
    res = training_loop(tiny(cache, tmp_path / "r", minutes=0.01))
    assert res.status == "done" and res.nimg > 0
    assert load(tmp_path / "r" / "last.pt")["elapsed"] >= 0.6


def test_fid_while_training_keeps_best(cache, tmp_path, capsys, monkeypatch):
    """... and each long phase says what it does first: the score (with its expected time once
    one was measured) and a BatchNorm re-estimation expected to take a while."""
    from facegan.train.methods.gan import EmaSampler
    from test_train_parts import MeanColourScorer

    monkeypatch.setattr(EmaSampler, "SAY_FIRST_S", 0.0)  # tiny models: "a while" is any time

    scorer = MeanColourScorer()
    ref = scorer.statistics(np.load(cache))
    np.savez(tmp_path / "ref.npz", mu=ref.mu, sigma=ref.sigma)
    res = training_loop(
        tiny(cache, tmp_path / "r", kimg=0.048, ref=str(tmp_path / "ref.npz"), fid_kimg=0.016, fid_n=20, fid_share=0),
        scorer=scorer,
    )
    rows = [json.loads(x) for x in (tmp_path / "r" / "stats.jsonl").read_text().splitlines()]
    fids = [r for r in rows if "fid" in r]
    assert [r["kimg"] for r in fids] == [0.016, 0.032, 0.048] and scorer.calls[1:] == [20, 20, 20]
    assert res.best_fid == min(r["fid"] for r in fids)
    best = load(tmp_path / "r" / "best.pt")
    assert best["best_fid"] == res.best_fid and best["nimg"] / 1000 == best["best_kimg"]
    said = capsys.readouterr().out
    assert said.count("FID@20 at kimg") == 3 and "sampling 20 images and scoring them with Inception" in said
    assert "(about 0 s, like the last one)" in said and "target 20" in said
    assert said.count("re-estimating the EMA generator's BatchNorm statistics (2 batches of 128") == 1


REAL_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared/data/celeba-10k"


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_PHOTOS.is_dir(), reason=f"real photos not found at {REAL_PHOTOS}")
def test_brief_dcgan_on_real_photos(tmp_path):
    """The full-size DCGAN (64x64, ngf = ndf = 64, default precision) trains two steps on real faces."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    names = sorted(REAL_PHOTOS.glob("*.jpg"))[:64]
    faces = np.stack([np.asarray(TF.center_crop(TF.resize(Image.open(p).convert("RGB"), 64), [64, 64]))
                      for p in names])
    np.save(tmp_path / "faces.npy", faces)  # a temporary cache: nothing derived from CelebA in the repo
    res = training_loop(TrainConfig(data=str(tmp_path / "faces.npy"), out=str(tmp_path / "r"), kimg=0.032, batch=16,
                                    tick_kimg=0.016, bn_batches=1, device="cpu", progress=False))
    assert res.status == "done" and res.step == 2
    ticks = [json.loads(x) for x in (tmp_path / "r" / "stats.jsonl").read_text().splitlines() if "loss_d" in x]
    assert len(ticks) == 2 and all(np.isfinite([t["loss_d"], t["loss_g"]]).all() for t in ticks)
    assert Image.open(tmp_path / "r" / "grid-real.png").size == (8 * 66 + 2, 8 * 66 + 2)


def test_matmul_convs_train_the_same_model(cache, tmp_path, monkeypatch):
    """--matmul-convs changes how the 4x4-map layers compute, not what: fp32 weights after 6
    steps agree with the library kernels' to float rounding, and the path is really taken."""
    from facegan.models import matmul_conv

    calls = []
    original = matmul_conv._run
    monkeypatch.setattr(matmul_conv, "_run", lambda *a: calls.append(a[0]) or original(*a))
    training_loop(tiny(cache, tmp_path / "on", kimg=0.048, matmul_convs="on"))
    assert calls, "no layer took the matrix-product path"
    calls.clear()
    training_loop(tiny(cache, tmp_path / "off", kimg=0.048, matmul_convs="off"))
    assert not calls
    on, off = load(tmp_path / "on" / "last.pt"), load(tmp_path / "off" / "last.pt")
    for part in ("G", "D", "G_ema"):
        for name, value in off[part].items():
            if value.is_floating_point():
                torch.testing.assert_close(on[part][name], value, rtol=1e-4, atol=1e-5, msg=f"{part}.{name}")


def test_slow_scoring_keeps_to_its_share_and_a_lone_final_score_is_skipped(cache, tmp_path, capsys):
    """A score that takes long next to training (FID on a CPU) waits until it fits in
    --fid-share of the time; and the score at the end, which alone would choose nothing, is
    skipped (no best.pt). With --fid-share 0: every --fid-kimg, as asked."""
    import time as _time

    from test_train_parts import MeanColourScorer

    class SlowScorer(MeanColourScorer):
        fast = True
        def statistics(self, images, **kw):
            _time.sleep(0.3 if self.fast else 1.0)
            return super().statistics(images, **kw)

    class SlowerScorer(SlowScorer):
        fast = False

    ref = MeanColourScorer().statistics(np.load(cache))
    np.savez(tmp_path / "ref.npz", mu=ref.mu, sigma=ref.sigma)
    counts = {}
    for share in (0.0, 0.1):
        out = tmp_path / f"share{share}"
        res = training_loop(tiny(cache, out, kimg=0.096, ref=str(tmp_path / "ref.npz"), fid_kimg=0.016, fid_n=8,
                                 fid_share=share), scorer=SlowScorer() if share == 0 else SlowerScorer())
        rows = [json.loads(x) for x in (out / "stats.jsonl").read_text().splitlines()]
        counts[share] = [r["kimg"] for r in rows if "fid" in r]
        assert (out / "best.pt").is_file() == bool(counts[share]) and (res.best is None) == (not counts[share])
    assert counts[0.0] == [0.016, 0.032, 0.048, 0.064, 0.08, 0.096]  # every --fid-kimg
    # 2 s (this score and the final one) never fits in 10 % of a few seconds of training
    assert counts[0.1] == []
    said = capsys.readouterr().out
    assert "FID@8 takes about" in said and "--fid-share 0.1" in said and "a single score would choose nothing" in said


def test_fid_budget_rule():
    """Score along the way only when the time spent on FID, this score and the final one fit
    in --fid-share of the elapsed time; the final only when an earlier score exists."""
    from types import SimpleNamespace

    from facegan.train.scoring import FidSchedule

    said = []
    hook = SimpleNamespace(estimate_s=lambda sampler: 45.0, last_s=45.0)
    fid = FidSchedule(hook, SimpleNamespace(fid_share=0.1, fid_n=1000), SimpleNamespace(distributed=False, world_size=1),
                      SimpleNamespace(message=said.append), total_s=3600.0)
    pr = SimpleNamespace(elapsed=0.0, best_fid=None, step=0)
    sampler = lambda: None  # noqa: E731
    pr.elapsed = 899.0  # 10 % of 899 s < 45 + 45
    assert not fid.due(False, pr, sampler)
    assert said[-1:] == ["FID@1000 takes about 45 s here; --fid-share 0.1 keeps scoring to 10% of the time, "
                    "so the first score comes after about 15 min of training"]
    pr.elapsed = 901.0
    assert fid.due(False, pr, sampler)
    fid.spent = 45.0
    assert not fid.due(False, pr, sampler) and len(said) == 1  # said once
    pr.elapsed = 1351.0
    assert fid.due(False, pr, sampler)
    assert not fid.due(True, pr, sampler)  # nothing scored yet: a lone final score chooses nothing
    pr.best_fid = 80.0
    assert fid.due(True, pr, sampler)
    fid.cfg.fid_share = 0.0  # every --fid-kimg regardless
    pr.elapsed, fid.spent = 1.0, 1e6
    assert fid.due(False, pr, sampler)


def test_first_tick_comes_early_and_the_last_partial_tick_is_logged(cache, tmp_path, monkeypatch):
    """However slow the steps, a first line comes after FIRST_TICK_S seconds; the steps after the
    last full tick are logged too, so stats.jsonl and curves.png always have losses."""
    import facegan.train.loop as loop

    monkeypatch.setattr(loop, "FIRST_TICK_S", 0.0)  # "30 s" passes after the first step
    training_loop(tiny(cache, tmp_path / "r", kimg=0.040, tick_kimg=0.032))
    rows = [json.loads(x) for x in (tmp_path / "r" / "stats.jsonl").read_text().splitlines()]
    ticks = [r for r in rows if "img_per_s" in r and "event" not in r]
    assert [t["step"] for t in ticks] == [1, 4, 5]  # early first tick, the kimg-0.032 tick, the last partial one
    assert all({"loss_d", "loss_g", "d_real", "d_fake"} <= set(t) for t in ticks)
    assert all(0 <= t["d_real"] <= 1 and 0 <= t["d_fake"] <= 1 for t in ticks)


def test_ticks_come_at_least_every_max_tick_seconds(cache, tmp_path, monkeypatch):
    """A --tick-kimg too large for the machine still gives a line every MAX_TICK_S seconds."""
    import facegan.train.loop as loop

    monkeypatch.setattr(loop, "FIRST_TICK_S", 0.0)
    monkeypatch.setattr(loop, "MAX_TICK_S", 0.0)  # every step is "late"
    training_loop(tiny(cache, tmp_path / "r", kimg=0.040, tick_kimg=1000.0))
    rows = [json.loads(x) for x in (tmp_path / "r" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "img_per_s" in r and "event" not in r] == [1, 2, 3, 4, 5]


def test_a_rerun_of_a_finished_run_trains_scores_and_draws_nothing(cache, tmp_path):
    """Resuming a run that already reached its length: no step, no FID, no new grid."""
    from test_train_parts import MeanColourScorer

    scorer = MeanColourScorer()
    ref = scorer.statistics(np.load(cache))
    np.savez(tmp_path / "ref.npz", mu=ref.mu, sigma=ref.sigma)
    kw = dict(kimg=0.016, ref=str(tmp_path / "ref.npz"), fid_kimg=1.0, fid_n=20, fid_share=0)
    training_loop(tiny(cache, tmp_path / "r", **kw), scorer=scorer)
    scored = len(scorer.calls)
    grids = sorted((tmp_path / "r").glob("grid-0*.png"))
    res = training_loop(config_for_resume(tmp_path / "r", {"kimg": 0.016}), resume=True, scorer=scorer)
    assert res.status == "done" and res.nimg == 16
    assert len(scorer.calls) == scored  # no FID for a training that took no step
    assert sorted((tmp_path / "r").glob("grid-0*.png")) == grids


def test_train_on_a_folder_of_photos_says_which_prepare_to_run(tmp_path, capsys):
    from facegan.cli import main

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "000001.jpg").write_bytes(b"not decoded here")
    assert main(["train", "--data", str(tmp_path / "photos"), "--out", str(tmp_path / "r"), "--kimg", "1"]) == 2
    err = capsys.readouterr().err
    assert f"facegan prepare {tmp_path / 'photos'} -o {tmp_path / 'photos64.npy'}" in err
    assert "Errno" not in err and "Traceback" not in err


def test_a_folder_holding_the_cache_and_a_cache_given_to_prepare_are_recognised(tmp_path, capsys):
    """`train --data data` where data/ holds the prepared cache names the cache; `prepare` given
    that folder or the .npy itself says it is prepared already (not "no images found")."""
    from facegan.cli import main

    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "celeba64.npy", np.zeros((2, 8, 8, 3), np.uint8))
    (data / "celeba64.json").write_text("{}")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--kimg", "1"]) == 2
    err = capsys.readouterr().err
    assert f"holds the prepared cache {data / 'celeba64.npy'}" in err and f"--data {data / 'celeba64.npy'}" in err
    assert "facegan prepare" not in err
    for src in (data, data / "celeba64.npy"):
        assert main(["prepare", str(src), "-o", str(tmp_path / "x.npy")]) == 2
        err = capsys.readouterr().err
        assert f"facegan train --data {data / 'celeba64.npy'}" in err and "no images found" not in err
    assert not (tmp_path / "x.npy").exists()


def test_disk_full_stops_with_one_line_and_keeps_the_last_checkpoint(cache, tmp_path, monkeypatch, capsys):
    import errno

    import facegan.train.checkpoint as ckpt

    training_loop(tiny(cache, tmp_path / "r", kimg=0.016))
    before = load(tmp_path / "r" / "last.pt")["nimg"]

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", full)
    with pytest.raises(FaceganError, match=r"last\.pt: cannot write it: No space left on device \(free some space"):
        training_loop(config_for_resume(tmp_path / "r", {"kimg": 0.032}), resume=True)
    monkeypatch.undo()
    assert load(tmp_path / "r" / "last.pt")["nimg"] == before  # the previous checkpoint, intact
    assert not [p for p in (tmp_path / "r").iterdir() if "facegan-tmp" in p.name]


def test_out_naming_a_file_is_refused(cache, tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(FaceganError, match="taken: is a file; --out takes the run folder"):
        training_loop(tiny(cache, tmp_path / "taken", kimg=0.016))


def test_stale_temporary_checkpoints_are_removed_at_the_next_start(cache, tmp_path, capsys):
    """A SIGKILL mid-write leaves `.last.pt.facegan-tmp-<pid>-<hex>`; the next start sweeps it."""
    import subprocess
    import sys

    training_loop(tiny(cache, tmp_path / "r", kimg=0.016))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "r" / f".last.pt.facegan-tmp-{int(dead.stdout)}-deadbeef"
    stale.write_bytes(b"half a checkpoint")
    training_loop(config_for_resume(tmp_path / "r", {"kimg": 0.032}), resume=True)
    assert not stale.exists()
    assert "removed .last.pt.facegan-tmp-" in capsys.readouterr().out
