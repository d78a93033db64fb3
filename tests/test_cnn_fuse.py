"""fuse_conv_bn: same outputs, fewer modules, on Sequentials, ResNets, BasicConv2d blocks (FID
Inception), transposed convs, and modules torch.fx cannot trace; nothing unsafe is folded."""

import pytest
import torch
from torch import nn

from facegan.cnn import create_model, fuse_conv_bn
from facegan.models.blocks import ConvBlock, UpBlock

BN = nn.modules.batchnorm._BatchNorm


pytestmark = [pytest.mark.usefixtures("one_thread"),  # see conftest.py
              pytest.mark.numeric]  # float results: run again with the kernels forced down in CI


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fresh BatchNorms are identities (mean 0, var 1): give them statistics worth folding."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BN):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model


def count(model: nn.Module, kind=BN) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def real_modules(model: nn.Module) -> int:
    return sum(not isinstance(m, nn.Identity) for m in model.modules())


def assert_same_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        ya, yb = a(x), b(x)
    if isinstance(ya, (list, tuple)):
        ya, yb = torch.cat([t.flatten() for t in ya]), torch.cat([t.flatten() for t in yb])
    torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-5)


def test_resnet18_fused_equal_outputs_fewer_modules_original_untouched():
    torch.manual_seed(0)
    model = randomize_bn(create_model("resnet18")).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    fused, pairs, skipped = fuse_conv_bn(model)
    assert len(pairs) == count(model) == 20 and not skipped
    assert ("conv1", "bn1") in pairs and ("layer2.0.downsample.0", "layer2.0.downsample.1") in pairs
    assert count(fused) == 0
    assert real_modules(fused) == real_modules(model) - 20
    assert_same_outputs(model, fused, x)
    with torch.no_grad():
        assert torch.equal(model(x), before)  # the original still has its BatchNorms


def test_sequential_blocks_in_1d_and_3d_and_inplace():
    torch.manual_seed(0)
    for name, shape in (("cnn1d", (1, 16)), ("cnn3d", (3, 4, 8, 8))):
        model = randomize_bn(create_model(name, width=4)).eval()
        reference = randomize_bn(create_model(name, width=4)).eval()
        reference.load_state_dict(model.state_dict())
        result = fuse_conv_bn(model, inplace=True)
        assert result.model is model and len(result.fused) == 3 and count(model) == 0
        assert_same_outputs(reference, model, torch.randn(2, *shape))


def test_transposed_conv_blocks_are_fused():
    torch.manual_seed(0)
    gen = randomize_bn(nn.Sequential(UpBlock(8, 6, 4, 1, 0), UpBlock(6, 3, 4, 2, 1))).eval()
    fused, pairs, _ = fuse_conv_bn(gen)
    assert pairs == [("0.0", "0.1"), ("1.0", "1.1")]
    assert_same_outputs(gen, fused, torch.randn(2, 8, 1, 1))


class BasicConv(nn.Module):
    """The BasicConv2d pattern: attributes `conv` and `bn`, applied one after the other in forward."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.bn = nn.BatchNorm2d(c_out)  # declared first: attribute order must not matter
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace this forward, so fusion looks inside."""

    def __init__(self):
        super().__init__()
        self.seq = ConvBlock(3, 4, norm="batch")
        self.basic = BasicConv(4, 4)
        self.tail = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))

    def forward(self, x):
        x = self.basic(self.seq(x))
        if x.sum() > 0:  # depends on the values
            x = x * 2
        return self.tail(x)


def test_modules_fx_cannot_trace_are_searched_inside():
    torch.manual_seed(0)
    model = randomize_bn(Untraceable()).eval()
    fused, pairs, _ = fuse_conv_bn(model)
    assert sorted(pairs) == [("basic.conv", "basic.bn"), ("seq.0", "seq.1"), ("tail.0", "tail.1")]
    assert_same_outputs(model, fused, torch.randn(2, 3, 8, 8))


class Shortcut(nn.Module):
    """conv's raw output feeds both the BatchNorm and a skip: folding would corrupt the skip."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class Twice(nn.Module):
    """The conv runs twice, once into the BatchNorm and once bare: folding would change the bare call."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.conv(x)) + self.conv(x)


@pytest.mark.parametrize("cls", [Shortcut, Twice])
def test_convs_whose_output_is_used_elsewhere_are_left_alone(cls):
    model = randomize_bn(cls()).eval()
    fused, pairs, _ = fuse_conv_bn(model)
    assert pairs == [] and count(fused) == 1
    assert_same_outputs(model, fused, torch.randn(2, 3, 8, 8))


def test_train_mode_batchnorms_are_skipped_with_a_reason():
    model = randomize_bn(create_model("cnn1d", width=4)).train()
    fused, pairs, skipped = fuse_conv_bn(model)
    assert pairs == [] and len(skipped) == 3 and "train mode" in skipped[0]
    assert count(fused) == 3
    nostats = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False)).eval()
    assert "running statistics" in fuse_conv_bn(nostats).skipped[0]


def test_googlenet_including_its_auxiliary_heads():
    model = create_model("googlenet").eval()
    fused, pairs, skipped = fuse_conv_bn(model)
    assert len(pairs) == count(model) and not skipped  # 57 in the trunk + one per aux head
    assert ("aux1.conv.conv", "aux1.conv.bn") in pairs
    assert count(fused) == 0


def test_pytorch_fid_inception_basicconv2d_pattern(monkeypatch):
    """The FID network: pytorch-fid's InceptionV3 (BasicConv2d = conv + bn + relu in forward)."""
    import pytorch_fid.inception as inception
    import torchvision.models.inception as tv_inception

    # Its constructor downloads the FID weights; structure is all we need, so load nothing.
    monkeypatch.setattr(inception, "load_state_dict_from_url", lambda *a, **k: {})
    monkeypatch.setattr(tv_inception.Inception3, "load_state_dict", lambda self, sd, *a, **k: None, raising=False)
    torch.manual_seed(0)
    model = randomize_bn(inception.InceptionV3([3], resize_input=False)).eval()
    fused, pairs, skipped = fuse_conv_bn(model)
    assert len(pairs) == count(model) == 94 and not skipped
    assert count(fused) == 0
    assert_same_outputs(model, fused, torch.rand(1, 3, 75, 75))
