"""The ResNet SN-GAN trains with the gpu preset's recipe and resumes bit-exactly in fp32 on the CPU."""

import numpy as np
import pytest

from facegan.train.presets import resolve
from resumecheck import assert_same_networks, straight_and_resumed


@pytest.mark.numeric
def test_resnet_with_the_gpu_recipe_resumes_bitwise(tmp_path, one_thread):
    np.save(tmp_path / "c.npy", np.random.default_rng(0).integers(0, 256, (32, 8, 8, 3), dtype=np.uint8))
    base = resolve("gpu", dict(data=str(tmp_path / "c.npy"), resolution=8, g={"ch": 4, "z_dim": 8}, d={"ch": 4},
                               batch=8, precision="fp32", progress=False, tick_kimg=0.008, grid_kimg=1.0,
                               bn_batches=1, device="cpu", augment_p=0.3, ada_kimg=0.05, ada_interval=1))
    # The decay follows the run's length, which a resume with a longer --kimg changes by design:
    # off here, so that "straight" and "stopped half-way" are the same schedule.
    base["lr_decay_start"] = None
    a, b = straight_and_resumed(tmp_path, base)
    assert a["step"] == b["step"] == 8
    assert_same_networks(a, b)  # spectral norm's u/v included
    assert a["augment"]["p"] == b["augment"]["p"]
    assert a["augment"]["p"] != 0.3  # the adaptive p moved, and moved the same way in both
