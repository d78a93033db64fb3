"""``facegan run`` end to end on tiny synthetic photos: every product lands and a rerun resumes."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from facegan.errors import FaceganError
from facegan.pipeline import RunConfig, run_pipeline

TINY = {"g": {"ngf": 8}, "d": {"ndf": 8}, "batch": 16, "tick_kimg": 0.032, "grid_kimg": 1.0, "progress": False}


@pytest.fixture
def photos(tmp_path):
    """60 smooth random 'faces' (80x96 JPEGs: portrait, like CelebA) in a folder."""
    rng = np.random.default_rng(0)
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(60):
        small = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
        Image.fromarray(small).resize((80, 96), Image.BILINEAR).save(d / f"{i:03d}.jpg", quality=90)
    return d


def test_run_makes_every_product_and_a_rerun_resumes(photos, tmp_path):
    out = tmp_path / "run"
    cfg = RunConfig(data=str(photos), out=str(out), student="20251234", kimg=0.064, n=20, ref_n=60,
                    fid_kimg=0.032, device="cpu")
    lines: list[str] = []
    res = run_pipeline(cfg, log=lines.append, train_overrides={**TINY, "fid_share": 0})

    cache = np.load(out / "cache64.npy", mmap_mode="r")
    assert cache.shape == (60, 64, 64, 3)
    assert res.checkpoint.name in ("best.pt", "last.pt") and res.checkpoint.is_file()
    assert sorted(p.name for p in res.samples.iterdir()) == [f"{i:04d}.png" for i in range(20)]
    with tarfile.open(out / "20251234.tar.gz") as tf:
        pngs = [m.name for m in tf.getmembers() if m.isfile()]
    assert len(pngs) == 20
    score = json.loads((out / "score.json").read_text())
    assert score["n_samples"] == 20 and score["n_reference"] == 60
    assert np.isfinite(score["fid"]) and score["fid"] > 0
    # 60 photos, 20 per split: two disjoint real-vs-rest splits give the floor beside the score
    assert score["floor"]["n_sample"] == 20 and score["floor"]["splits"] == 2
    assert any(line.startswith("FID@20 = ") and "real photos score" in line for line in lines)
    assert any(line.strip().startswith("target    FID@1k below 20 (the brief)") for line in lines)
    # the floor travels in ref.npz, so training logs it beside every FID it measures
    logged = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    fids = [rec for rec in logged if "fid" in rec]
    assert [rec["kimg"] for rec in fids] == [0.032, 0.064] and all(rec["fid_floor"] == pytest.approx(score["floor"]["mean"]) for rec in fids)

    # Second call: cache and reference reused, training resumed (already at its length).
    lines.clear()
    again = run_pipeline(cfg, log=lines.append, train_overrides={**TINY, "fid_share": 0})
    text = "\n".join(lines)
    assert "prepare: reusing" in text and "reference: reusing" in text and "train: resuming" in text
    assert "already trained" in text and "pass --kimg" in text  # it says how to train on
    assert "sample, score, pack: reusing" in text  # the checkpoint is unchanged: nothing to redo
    assert again.fid == res.fid
    # A changed checkpoint is sampled and scored again.
    ckpt = res.checkpoint
    ckpt.write_bytes(ckpt.read_bytes())  # same bytes: still reused
    lines.clear()
    run_pipeline(RunConfig(**{**cfg.__dict__, "kimg": 0.096}), log=lines.append,
                 train_overrides={**TINY, "fid_share": 0})
    assert "[4/6] sample" in "\n".join(lines)


@pytest.mark.slow
def test_a_short_run_scores_once_and_always_shows_floor_and_target(photos, tmp_path, capsys):
    """A run too short for a second score: no FID while training (alone it would choose nothing),
    the samples are scored once; with too few photos for a floor, it says so instead of nothing."""
    out = tmp_path / "run"
    cfg = RunConfig(data=str(photos), out=str(out), kimg=0.032, n=40, ref_n=60, device="cpu")
    lines: list[str] = []
    run_pipeline(cfg, log=lines.append, train_overrides=TINY)
    logged = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert not [rec for rec in logged if "fid" in rec] and not (out / "best.pt").exists()
    assert "a single score would choose nothing" in capsys.readouterr().out
    text = "\n".join(lines)
    assert "no real-data floor: it needs at least 80 photos" in text
    assert "real-data floor not measured (needs 80 photos" in text
    assert "target    FID@1k below 20 (the brief)" in text
    assert "Inception on 40 samples: about" in text and "Inception on 60 photos: about" in text


def test_run_with_a_preset_end_to_end(photos, tmp_path):
    """`facegan run --preset cpu` with tiny sizes: the preset's recipe is what trained."""
    out = tmp_path / "run"
    cfg = RunConfig(data=str(photos), out=str(out), student="20251234", kimg=0.032, n=10, ref_n=60, device="cpu",
                    preset="cpu")
    run_pipeline(cfg, log=lambda s: None, train_overrides=TINY)
    saved = json.loads((out / "config.json").read_text())
    assert saved["preset"] == "cpu" and saved["lr_decay_start"] == 0.5
    assert saved["augment"] == "translation,color,cutout" and saved["ada_target"] == 0.9
    assert saved["g"]["ngf"] == 8  # what was given beside the preset wins
    assert (out / "20251234.tar.gz").is_file()


@pytest.mark.slow
def test_run_with_the_stylegan2_preset_end_to_end(photos, tmp_path):
    """`facegan run --preset stylegan2` with tiny widths: trains (lazy R1, no tanh), samples, packs."""
    out = tmp_path / "run"
    cfg = RunConfig(data=str(photos), out=str(out), student="20251234", kimg=0.032, n=10, ref_n=60, device="cpu",
                    preset="stylegan2")
    tiny = {"channel_base": 64, "channel_max": 8}
    over = {**TINY, "g": {**tiny, "z_dim": 16, "w_dim": 16}, "d": tiny, "r1_every": 2}
    run_pipeline(cfg, log=lambda s: None, train_overrides=over)
    saved = json.loads((out / "config.json").read_text())
    assert saved["preset"] == "stylegan2" and saved["arch"] == "stylegan2" and saved["loss"] == "bce"
    assert saved["r1_gamma"] == pytest.approx(0.0002 * 64**2 / 16)  # the heuristic, at this run's batch
    assert saved["g"]["channel_max"] == 8 and saved["g"]["map_lr_mul"] == 0.01
    rows = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert any("r1" in r for r in rows)
    with tarfile.open(out / "20251234.tar.gz") as tf:
        assert len([m for m in tf.getmembers() if m.isfile()]) == 10


def test_missing_data_is_named(tmp_path):
    cfg = RunConfig(data=str(tmp_path / "nowhere"), out=str(tmp_path / "run"), kimg=1)
    with pytest.raises(FaceganError, match="nowhere: no such file or folder"):
        run_pipeline(cfg, log=lambda s: None)


def test_config_defaults_and_validation():
    assert RunConfig(out="x").minutes == 60.0
    assert RunConfig(out="x", kimg=5).minutes is None
    with pytest.raises(FaceganError, match="--student must be a plain name"):
        RunConfig(out="x", student="../evil")
