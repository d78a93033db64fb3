"""A training method that is not a GAN trains without editing facegan: a tiny denoising model
(noise prediction with an MSE objective over a few noise levels, sampled by a few deterministic
DDIM steps), registered inside this test with its own options, trains through ``training_loop``,
resumes bit for bit, samples from its checkpoint with ``facegan sample``, and its option reaches
``facegan train --help``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facegan.errors import FaceganError
from facegan.models.sampling import Sampler, to_uint8
from facegan.train.methods import METHODS, method_options, register_method

from resumecheck import straight_and_resumed


@dataclass
class DenoiseOptions:
    levels: int = 4
    """noise levels trained on, and sampling steps"""
    hidden: int = 16
    """channels of the denoiser"""
    lr: float = 2e-3
    """Adam learning rate"""

    def __post_init__(self):
        if self.levels < 1:
            raise ValueError(f"levels must be at least 1, got {self.levels}")


def signal_levels(levels: int) -> torch.Tensor:
    """alpha-bar per level: the share of signal left in x_t (level 0 nearly clean)."""
    return torch.linspace(0.98, 0.02, levels)


class Denoiser(nn.Module):
    """Predicts the noise in x_t, told the level as an extra input channel."""

    def __init__(self, opts: DenoiseOptions):
        super().__init__()
        self.levels = opts.levels
        self.net = nn.Sequential(nn.Conv2d(4, opts.hidden, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(opts.hidden, opts.hidden, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(opts.hidden, 3, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        level = (t.float() / max(self.levels - 1, 1)).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        return self.net(torch.cat([x, level], 1))  # (B, 3, H, W)


class DdimSampler:
    """Deterministic DDIM from the noisiest level down: x_T from the image's own seed, so image k
    depends on seeds[k] only."""

    def __init__(self, net: Denoiser, resolution: int, device: Any = "cpu"):
        self.net, self.resolution, self.device = net, resolution, torch.device(device)
        self.abar = signal_levels(net.levels).to(self.device)

    @torch.no_grad()
    def __call__(self, seeds: Sequence[int]) -> np.ndarray:
        g = torch.Generator()
        x = torch.stack([torch.randn(3, self.resolution, self.resolution, generator=g.manual_seed(int(s)))
                         for s in seeds]).to(self.device)
        was = self.net.training
        self.net.eval()
        for t in reversed(range(self.net.levels)):
            a = self.abar[t]
            eps = self.net(x, torch.full((len(x),), t, device=self.device))
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            x = x0 if t == 0 else self.abar[t - 1].sqrt() * x0 + (1 - self.abar[t - 1]).sqrt() * eps
        self.net.train(was)
        return to_uint8(x)


class DenoiseMethod:
    """The method: one MSE step on noised real images per step; its sampler is DDIM."""

    def __init__(self, cfg, options: DenoiseOptions, info):
        self.cfg, self.options, self.device = cfg, options, info.device
        self.net = Denoiser(options).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=options.lr)
        self.noise = torch.Generator(device=self.device).manual_seed(cfg.seed * 7 + 11 + info.rank)
        self.abar = signal_levels(options.levels).to(self.device)
        self.channels_last = False
        self.images_per_step = cfg.batch
        self.sync_module = self.net

    def step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, torch.Tensor | float]:
        x0 = next_real()
        t = torch.randint(0, self.options.levels, (len(x0),), generator=self.noise, device=self.device)
        eps = torch.randn(x0.shape, generator=self.noise, device=self.device)
        a = self.abar[t].view(-1, 1, 1, 1)
        loss = F.mse_loss(self.net(a.sqrt() * x0 + (1 - a).sqrt() * eps, t), eps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss_mse": loss.detach()}

    def set_lr_scale(self, scale: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = self.options.lr * scale

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])

    def sampler(self, say=None) -> Sampler:
        return DdimSampler(self.net, self.cfg.resolution, self.device)

    def describe(self) -> str:
        n = sum(p.numel() for p in self.net.parameters())
        return f"tiny denoiser {n} params, {self.options.levels} noise levels"

    @staticmethod
    def check_checkpoint(state: dict[str, Any], path: Path) -> None:
        if not isinstance(state.get("net"), dict) or not isinstance(state.get("opt"), dict):
            raise FaceganError(f"{path}: damaged checkpoint: no denoiser weights")
        method_options("tinydenoise", state["config"].get("method_options"))

    @staticmethod
    def load_sampler(state: dict[str, Any], which: str, device: Any, batch_size: int) -> Sampler:
        net = Denoiser(method_options("tinydenoise", state["config"].get("method_options")))
        net.load_state_dict(state["net"])
        return DdimSampler(net.to(device), state["config"]["resolution"], device)


@pytest.fixture
def denoise_method():
    register_method("tinydenoise", config=DenoiseOptions)(DenoiseMethod)
    yield "tinydenoise"
    METHODS.remove("tinydenoise")


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "c.npy"
    yy, xx = np.mgrid[:8, :8]
    imgs = np.stack([np.stack([128 + 100 * np.sin(xx / (1 + k % 3) + c + k) for c in range(3)], -1)
                     for k in range(32)]).astype(np.uint8)
    np.save(path, imgs)
    return path


def _base(cache, method):
    return dict(data=str(cache), method=method, method_options={"hidden": 8, "levels": 3}, resolution=8, batch=8,
                precision="fp32", matmul_convs="off", progress=False, device="cpu", tick_kimg=0.016)


def test_a_denoising_method_trains_resumes_and_samples(denoise_method, cache, tmp_path, capsys):
    a, b = straight_and_resumed(tmp_path, _base(cache, denoise_method), kimg=0.064)
    assert a["step"] == b["step"] == 8 and a["nimg"] == 64
    assert "G" not in a and set(a["config"]["method_options"]) == {"levels", "hidden", "lr"}
    for key in ("net", "opt"):
        ta, tb = a[key], b[key]
        if key == "net":
            assert all(torch.equal(ta[k], tb[k]) for k in ta)  # resume is exact, the method's noise included
        else:
            assert all(torch.equal(x, y) for k in ta["state"] for x, y in zip(ta["state"][k].values(),
                                                                              tb["state"][k].values()))
    rows = [json.loads(x) for x in (tmp_path / "a" / "stats.jsonl").read_text().splitlines()]
    losses = [r["loss_mse"] for r in rows if "loss_mse" in r]
    assert losses and all(np.isfinite(losses))
    assert list((tmp_path / "a").glob("grid-*.png"))  # the grids come from the method's sampler

    from facegan.cli import main

    capsys.readouterr()
    assert main(["sample", str(tmp_path / "a"), "-o", str(tmp_path / "s"), "-n", "4", "--device", "cpu"]) == 0
    assert main(["sample", str(tmp_path / "a" / "last.pt"), "-o", str(tmp_path / "s2"), "-n", "2",
                 "--first-seed", "2", "--device", "cpu"]) == 0
    from PIL import Image

    def load_png(path):
        return np.asarray(Image.open(path))

    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["0000.png", "0001.png", "0002.png", "0003.png"]
    # image k depends on seed k only: seed 2 alone gives the same bytes as in a batch of four
    assert np.array_equal(load_png(tmp_path / "s" / "0002.png"), load_png(tmp_path / "s2" / "0002.png"))
    assert not np.array_equal(load_png(tmp_path / "s" / "0000.png"), load_png(tmp_path / "s" / "0001.png"))

    with pytest.raises(FaceganError, match="cannot change --method-options"):
        from facegan.train import config_for_resume

        config_for_resume(tmp_path / "a", {"method_options": {"hidden": 4}})


def test_a_methods_options_reach_the_command_line(denoise_method, cache, tmp_path, capsys):
    from facegan.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "--m.levels" in help_text and "tinydenoise: default 4" in help_text
    assert "registered: gan, tinydenoise" in help_text
    code = main(["train", "--data", str(cache), "--out", str(tmp_path / "r"), "--kimg", "1",
                 "--method", denoise_method, "--m.levels", "0"])
    assert code == 2 and "levels must be at least 1" in capsys.readouterr().err
    code = main(["train", "--data", str(cache), "--out", str(tmp_path / "r"), "--kimg", "0.016", "--resolution", "8",
                 "--batch", "8", "--method", denoise_method, "--m.hidden", "4", "--precision", "fp32",
                 "--matmul-convs", "off", "--threads", "1", "--device", "cpu", "--no-progress"])
    assert code == 0
    from facegan.train.checkpoint import load

    state = load(tmp_path / "r" / "last.pt")
    assert state["config"]["method"] == denoise_method and state["config"]["method_options"]["hidden"] == 4


def test_a_checkpoint_of_an_unknown_method_is_one_clear_line(denoise_method, cache, tmp_path):
    from facegan.train import TrainConfig, training_loop
    from facegan.train.checkpoint import load

    training_loop(TrainConfig(out=str(tmp_path / "r"), kimg=0.016, **_base(cache, denoise_method)))
    METHODS.remove(denoise_method)  # e.g. a checkpoint from a plug-in this installation lacks
    with pytest.raises(FaceganError, match=r"last.pt: unknown method 'tinydenoise'; registered methods: gan"):
        load(tmp_path / "r" / "last.pt")
    state = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    state["config"]["method"] = 7  # a damaged config: one line naming the file, not a TypeError
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(FaceganError, match=r"bad.pt: its config names no method \('method' is int\)"):
        load(tmp_path / "bad.pt")


def test_the_loop_knows_the_method_by_role_only():
    """loop.py names no network, loss, optimiser or augmentation, stays small, and the speed
    check builds the method itself (no import of the loop: no circle)."""
    import ast
    import io
    import tokenize

    import facegan.train.autotune as autotune
    import facegan.train.loop as loop

    source = Path(loop.__file__).read_text()
    names = {t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.NAME}
    gan_words = {"G", "D", "G_ema", "opt_g", "opt_d", "z_dim", "n_dis", "augment", "Augment", "GanStep", "get_loss",
                 "update_ema", "ema_beta", "generator", "discriminator", "lr_g", "lr_d"}
    assert not names & gan_words, names & gan_words
    assert len(source.splitlines()) <= 450
    imported = {n.module for n in ast.walk(ast.parse(Path(autotune.__file__).read_text()))
                if isinstance(n, ast.ImportFrom)}
    assert "facegan.train.loop" not in imported


def test_both_methods_keep_the_protocol(denoise_method, cache):
    from facegan.train import TrainConfig
    from facegan.train.distributed import DistInfo
    from facegan.train.methods import TrainingMethod, build_training

    for method in ("gan", denoise_method):
        cfg = TrainConfig(out="x", kimg=1, **{**_base(cache, method), **({"method_options": None, "g": {"ngf": 4},
                                                                           "d": {"ndf": 4}} if method == "gan" else {})})
        built, loader = build_training(cfg, np.load(cache), DistInfo())
        assert isinstance(built, TrainingMethod)
        scalars = built.step(lambda: next(loader))
        assert scalars and all(torch.isfinite(torch.as_tensor(v)).all() for v in scalars.values())
        images = built.sampler()([0, 1])
        assert images.shape == (2, 8, 8, 3) and images.dtype == np.uint8
        assert built.describe()
