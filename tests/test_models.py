"""The DCGAN pair and the model registry: shapes, ranges, the paper's layers and init, errors."""

import pytest
import torch
from torch import nn

from facegan.errors import FaceganError
from dataclasses import dataclass

from facegan.models.registry import (
    DISCRIMINATORS, GENERATORS, Discriminator, Generator, build, config_class, create_discriminator, create_generator,
    list_models,
)
from facegan.models.blocks import NORMS


@pytest.mark.parametrize("res", [8, 16, 32])
def test_shapes_and_range(res):
    torch.manual_seed(0)
    G = create_generator("dcgan", z_dim=7, ngf=4, resolution=res)
    D = create_discriminator("dcgan", ndf=4, resolution=res)
    assert (G.z_dim, G.resolution, D.resolution) == (7, res, res)
    x = G(torch.randn(3, 7) * 10)  # large z: the tanh must still bound the output
    assert x.shape == (3, 3, res, res)
    assert x.min() >= -1 and x.max() <= 1
    y = D(x)
    assert y.shape == (3,)
    assert y.dtype == torch.float32


def test_brief_layers_at_64():
    """The tutorial's widths: G 100→512→256→128→64→3, D 3→64→128→256→512→1, all 4×4 kernels."""
    G = create_generator("dcgan", z_dim=100, ngf=64, resolution=64)
    D = create_discriminator("dcgan", ndf=64, resolution=64)
    g_convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    d_convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in g_convs] == [(100, 512), (512, 256), (256, 128), (128, 64), (64, 3)]
    assert [(m.in_channels, m.out_channels) for m in d_convs] == [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    assert all(m.kernel_size == (4, 4) for m in g_convs + d_convs)
    assert [m.stride for m in g_convs] == [(1, 1)] + [(2, 2)] * 4
    assert [m.stride for m in d_convs] == [(2, 2)] * 4 + [(1, 1)]
    # BatchNorm after every hidden G layer; in D after every conv but the first and the last.
    assert sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) == 4
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == 3
    assert isinstance(list(D.net[0].children())[0], nn.Conv2d) and not any(
        isinstance(m, nn.BatchNorm2d) for m in D.net[0].modules()
    )
    assert any(isinstance(m, nn.Tanh) for m in G.modules())
    assert sum(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in D.modules()) == 4


def test_init_is_normal_002():
    torch.manual_seed(1)
    G = create_generator("dcgan", ngf=32, resolution=32)
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 1e-3
    assert 0.018 < w.std().item() < 0.022
    bn = torch.cat([m.weight for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert 0.95 < bn.mean().item() < 1.05


@pytest.mark.parametrize("norm", NORMS)
def test_every_norm_trains_one_step(norm):
    torch.manual_seed(0)
    G = create_generator("dcgan", z_dim=8, ngf=4, resolution=16, norm=norm)
    D = create_discriminator("dcgan", ndf=4, resolution=16, norm=norm, dropout=0.3)
    loss = D(G(torch.randn(4, 8))).mean()
    loss.backward()
    assert all(p.grad is not None for p in G.parameters())
    assert sum(isinstance(m, nn.Dropout) for m in D.modules()) == 2  # after each hidden layer


def test_registry_lists_and_rejects():
    assert "dcgan" in list_models("generator") and "dcgan" in list_models("discriminator")
    with pytest.raises(FaceganError, match="unknown generator 'nope'.*dcgan"):
        create_generator("nope")
    with pytest.raises(FaceganError, match="no option.*widht"):
        create_generator("dcgan", widht=3)
    with pytest.raises(FaceganError, match="power of two"):
        create_discriminator("dcgan", resolution=48)


def test_registry_takes_new_models():
    @dataclass
    class LinConfig:
        z_dim: int = 4
        """latent size"""
        resolution: int = 8
        """output size"""

    @GENERATORS.register("test-linear", config=LinConfig)
    class Lin(nn.Module):
        def __init__(self, cfg: LinConfig):
            super().__init__()
            self.z_dim, self.resolution = cfg.z_dim, cfg.resolution
            self.fc = nn.Linear(cfg.z_dim, 3 * cfg.resolution**2)

        def forward(self, z):
            return torch.tanh(self.fc(z)).view(-1, 3, self.resolution, self.resolution)

    try:
        assert "test-linear" in list_models("generator")
        assert create_generator("Test_Linear", z_dim=5)(torch.zeros(2, 5)).shape == (2, 3, 8, 8)  # one naming rule
        with pytest.raises(ValueError, match="already registered"):
            GENERATORS.register("test-linear", config=LinConfig)(type("Other", (nn.Module,), {}))
    finally:
        GENERATORS.remove("test-linear")
    assert "test-linear" not in list_models("generator")


def test_builtin_models_are_found_without_a_list():
    """A fresh interpreter finds every model module of facegan.models by itself."""
    import subprocess
    import sys

    code = "from facegan.models.registry import list_models; print(','.join(list_models()))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert "dcgan" in names.split(",")


@pytest.mark.parametrize("name", list_models("generator"))
def test_every_generator_keeps_the_interface(name):
    torch.manual_seed(0)
    cfg = config_class("generator", name)(resolution=16)
    G = build("generator", name, cfg).eval()
    assert isinstance(G, Generator) and (G.resolution, G.z_dim) == (16, cfg.z_dim)
    with torch.no_grad():
        x = G(torch.randn(2, G.z_dim) * 5)
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("name", list_models("discriminator"))
def test_every_discriminator_keeps_the_interface(name):
    torch.manual_seed(0)
    D = build("discriminator", name, config_class("discriminator", name)(resolution=16))
    assert isinstance(D, Discriminator) and D.resolution == 16
    y = D(torch.rand(3, 3, 16, 16) * 2 - 1)
    assert y.shape == (3,)
    y.sum().backward()
    assert all(p.grad is not None for p in D.parameters() if p.requires_grad)
