"""Presets: data, each resolving to a valid config; `dcgan` is the brief's recipe exactly."""

import dataclasses

import pytest

from facegan.errors import FaceganError
from facegan.train.config import TrainConfig
from facegan.train.presets import PRESETS, resolve

BASE = {"data": "x.npy", "out": "r", "kimg": 1}


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_resolves_to_a_valid_config(name):
    cfg = TrainConfig(**resolve(name, BASE))
    assert cfg.preset == name
    for k, v in PRESETS[name].overrides.items():
        got = getattr(cfg, k)
        if isinstance(v, dict):
            assert {f: getattr(got, f) for f in v} == v
        elif k == "r1_gamma" and v is None:  # None: resolved to the heuristic's number
            from facegan.train.config import r1_heuristic

            assert got == r1_heuristic(cfg.resolution, cfg.batch) > 0
        else:
            assert got == v


def test_dcgan_preset_is_the_default_recipe():
    plain, preset = TrainConfig(**BASE), TrainConfig(**resolve("dcgan", BASE))
    assert {**dataclasses.asdict(preset), "preset": None} == dataclasses.asdict(plain)
    assert (plain.batch, plain.lr_g, plain.lr_d, plain.beta1_g, plain.beta1_d, plain.loss) == (128, 2e-4, 2e-4, 0.5, 0.5, "bce")
    assert (plain.g.ngf, plain.d.ndf, plain.g.z_dim, plain.g.norm) == (64, 64, 100, "batch")


def test_given_options_win_and_networks_merge_field_by_field():
    cfg = TrainConfig(**resolve("gpu", {**BASE, "batch": 32, "g": {"z_dim": 64}}))
    assert cfg.batch == 32 and cfg.g.z_dim == 64 and cfg.g.ch == 32  # z from the user, width from the preset
    with pytest.raises(FaceganError, match="--preset 'fast'.*dcgan, cpu, gpu"):
        resolve("fast", BASE)


def test_presets_are_listed_by_train_help(capsys):
    from facegan.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in PRESETS)


def test_lr_decays_linearly_over_the_second_half(tmp_path):
    import json

    import numpy as np

    from facegan.train import training_loop

    np.save(tmp_path / "c.npy", np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8))
    training_loop(TrainConfig(data=str(tmp_path / "c.npy"), out=str(tmp_path / "r"), kimg=0.064, resolution=8,
                              g={"z_dim": 4, "ngf": 4}, d={"ndf": 4}, batch=8, progress=False, tick_kimg=0.008,
                              lr_decay_start=0.5, bn_batches=1, precision="fp32"))
    rows = [json.loads(x) for x in (tmp_path / "r" / "stats.jsonl").read_text().splitlines()]
    scales = [r["lr_scale"] for r in rows if "lr_scale" in r]
    # set before each step from the images seen before it: 1 until half-way, then (1 - f) / (1 - 0.5)
    assert scales == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25])
