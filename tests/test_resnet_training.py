"""The ResNet SN-GAN trains with the gpu preset's recipe and resumes bit-exactly in fp32 on the CPU."""

import numpy as np
import pytest
import torch

from facegan.train import TrainConfig, config_for_resume, training_loop
from facegan.train.checkpoint import load
from facegan.train.presets import resolve


@pytest.mark.numeric
def test_resnet_with_the_gpu_recipe_resumes_bitwise(tmp_path, one_thread):
    np.save(tmp_path / "c.npy", np.random.default_rng(0).integers(0, 256, (32, 8, 8, 3), dtype=np.uint8))
    base = resolve("gpu", dict(data=str(tmp_path / "c.npy"), resolution=8, g={"ch": 4, "z_dim": 8}, d={"ch": 4},
                               batch=8, precision="fp32", progress=False, tick_kimg=0.008, grid_kimg=1.0,
                               bn_batches=1, device="cpu", augment_p=0.3, ada_kimg=0.05, ada_interval=1))
    # The decay follows the run's length, which a resume with a longer --kimg changes by design:
    # off here, so that "straight" and "stopped half-way" are the same schedule.
    base["lr_decay_start"] = None
    training_loop(TrainConfig(out=str(tmp_path / "a"), kimg=0.064, **base))
    training_loop(TrainConfig(out=str(tmp_path / "b"), kimg=0.032, **base))
    training_loop(config_for_resume(tmp_path / "b", {"kimg": 0.064}), resume=True)
    a, b = load(tmp_path / "a" / "last.pt"), load(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == 8
    for key in ("G", "D", "G_ema"):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), (key, name)  # spectral norm's u/v included
    assert a["augment"]["p"] == b["augment"]["p"]
    assert a["augment"]["p"] != 0.3  # the adaptive p moved, and moved the same way in both
