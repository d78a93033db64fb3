"""Adding a model is one new file: a throwaway pair registered here trains, resumes and samples
through the public entry points, with no edit to any facegan module."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from facegan.models.registry import DISCRIMINATORS, GENERATORS
from facegan.sample import load_generator, sample_to_folder
from facegan.train import TrainConfig, training_loop


@dataclass
class TinyGConfig:
    z_dim: int = 6
    """latent size"""
    hidden: int = 16
    """width of the hidden layer"""
    resolution: int = 8
    """output size"""

    def __post_init__(self):
        if self.hidden < 1:
            raise ValueError(f"hidden must be at least 1, got {self.hidden}")


@dataclass
class TinyDConfig:
    hidden: int = 16
    """width of the hidden layer"""
    resolution: int = 8
    """input size"""


class TinyG(nn.Module):
    def __init__(self, cfg: TinyGConfig):
        super().__init__()
        self.z_dim, self.resolution = cfg.z_dim, cfg.resolution
        self.net = nn.Sequential(nn.Linear(cfg.z_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 3 * cfg.resolution**2))

    def forward(self, z):
        return torch.tanh(self.net(z)).view(-1, 3, self.resolution, self.resolution)  # (B, 3, R, R)


class TinyD(nn.Module):
    def __init__(self, cfg: TinyDConfig):
        super().__init__()
        self.resolution = cfg.resolution
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * cfg.resolution**2, cfg.hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(cfg.hidden, 1))

    def forward(self, x):
        return self.net(x).flatten()  # (B,)


@pytest.fixture
def throwaway_model():
    GENERATORS.register("throwaway", config=TinyGConfig)(TinyG)
    DISCRIMINATORS.register("throwaway", config=TinyDConfig)(TinyD)
    yield "throwaway"
    GENERATORS.remove("throwaway")
    DISCRIMINATORS.remove("throwaway")


def test_a_new_model_trains_resumes_and_samples(throwaway_model, tmp_path):
    cache = tmp_path / "c.npy"
    np.save(cache, np.random.default_rng(0).integers(0, 256, (32, 8, 8, 3), dtype=np.uint8))
    base = dict(data=str(cache), arch=throwaway_model, resolution=8, g={"hidden": 12}, batch=8, precision="fp32",
                progress=False, device="cpu", tick_kimg=0.008, joint_d=True, augment="translation", augment_p=0.5)
    straight = training_loop(TrainConfig(out=str(tmp_path / "a"), kimg=0.032, **base))
    training_loop(TrainConfig(out=str(tmp_path / "b"), kimg=0.016, **base))
    from facegan.train import config_for_resume

    resumed = training_loop(config_for_resume(tmp_path / "b", {"kimg": 0.032}), resume=True)
    assert straight.step == resumed.step == 4
    a, b = load_generator(tmp_path / "a" / "last.pt"), load_generator(tmp_path / "b" / "last.pt")
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)  # resume is exact, augmentation's random state included
    assert isinstance(a, TinyG) and a.net[0].out_features == 12  # rebuilt from the stored config alone
    paths = sample_to_folder(tmp_path / "a", tmp_path / "samples", 5, progress=False)
    assert [p.name for p in paths] == ["0000.png", "0001.png", "0002.png", "0003.png", "0004.png"]


def test_a_new_models_options_reach_the_command_line(throwaway_model, tmp_path, capsys):
    from facegan.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help-all"])  # the networks' own options: in the full help
    help_text = capsys.readouterr().out
    assert "--g.hidden" in help_text and "throwaway: default 16" in help_text
    code = main(["train", "--data", str(tmp_path / "none.npy"), "--out", str(tmp_path / "r"), "--kimg", "1",
                 "--arch", throwaway_model, "--g.hidden", "0"])
    assert code == 2
    assert "hidden must be at least 1" in capsys.readouterr().err
