"""The architecture registry: published parameter counts, forward and backward for every entry."""

import pytest
import torch
from torch import nn

from facegan.cnn import create_model, get_spec, list_models
from facegan.cnn.arithmetic import conv_params
from facegan.errors import FaceganError
from facegan.models.blocks import NORMS


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(name: str, **kw) -> nn.Module:
    """Counting parameters needs no memory: build on the meta device."""
    with torch.device("meta"):
        return create_model(name, **kw)


# Published counts (papers / torchvision's model cards), in millions, to the digits given there.
PUBLISHED_M = {
    "vgg16": 138.36,
    "vgg19": 143.67,
    "resnet18": 11.69,
    "resnet34": 21.80,
    "resnet50": 25.56,
    "resnet101": 44.55,
    "resnet152": 60.19,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_M))
def test_published_parameter_counts(name):
    assert round(n_params(on_meta(name)) / 1e6, 2) == PUBLISHED_M[name]


def test_googlenet_has_two_aux_heads_and_6_6m_without_them():
    full = on_meta("googlenet")
    assert {"aux1", "aux2"} <= {name for name, _ in full.named_children()}
    inception = [m for m in full.modules() if type(m).__name__ == "Inception"]
    assert len(inception) == 9  # 3a, 3b, 4a-4e, 5a, 5b
    assert round(n_params(on_meta("googlenet", aux_logits=False)) / 1e6, 1) == 6.6
    heads = n_params(full.aux1) + n_params(full.aux2)
    assert n_params(full) - heads == n_params(on_meta("googlenet", aux_logits=False))


def test_lenet5_is_the_classic_60k_network():
    model = on_meta("lenet5")
    # C1 6@5x5 on 1 map, C3 16@5x5 on 6 maps, C5 120@5x5 on 16 maps, F6 84, output 10.
    convs = conv_params(5, 1, 6) + conv_params(5, 6, 16) + conv_params(5, 16, 120)
    expected = convs + (120 + 1) * 84 + (84 + 1) * 10
    assert n_params(model) == expected
    assert 55_000 < expected < 65_000


def test_alexnet_is_the_lecture_version():
    model = on_meta("alexnet")
    conv1 = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert (conv1.out_channels, conv1.kernel_size, conv1.stride, conv1.padding) == (96, (11, 11), (4, 4), (0, 0))
    # Sum of the lecture's layers: five convs and three FC layers on a 6x6x256 volume.
    convs = conv_params(11, 3, 96) + conv_params(5, 96, 256) + conv_params(3, 256, 384) \
        + conv_params(3, 384, 384) + conv_params(3, 384, 256)
    fcs = (6 * 6 * 256 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
    assert n_params(model) == convs + fcs
    assert 60e6 < n_params(model) < 63e6
    # The paper's two-GPU split halves the weights of CONV2, CONV4, CONV5: "60 million".
    split = n_params(on_meta("alexnet", groups=2))
    assert round(split / 1e6) == 61 and split < n_params(model)


def test_every_model_has_a_spec_and_unknown_names_list_the_valid_ones():
    names = list_models()
    for expected in ["lenet5", "alexnet", "vgg16", "vgg19", "googlenet", "resnet18", "resnet34",
                     "resnet50", "resnet101", "resnet152", "cnn1d", "cnn3d"]:
        assert expected in names
    assert get_spec("LeNet-5").name == "lenet5" and get_spec("VGG16_BN").name == "vgg16-bn"
    with pytest.raises(FaceganError, match="unknown model 'resnet9'.*resnet18.*cnn3d"):
        create_model("resnet9")
    with pytest.raises(FaceganError, match="alexnet"):
        create_model("alexnet", groups=3)


def _loss(out) -> torch.Tensor:
    """Sum over every tensor output (GoogLeNet returns logits and two auxiliary logits in train mode)."""
    if isinstance(out, torch.Tensor):
        return out.float().pow(2).mean()
    return sum(_loss(o) for o in out if o is not None)


@pytest.mark.parametrize("name", list_models())
def test_forward_and_backward_on_a_tiny_batch(name):
    torch.manual_seed(0)
    spec = get_spec(name)
    model = create_model(name).train()
    x = torch.randn(2, *spec.small_input)
    out = model(x)
    if name == "googlenet":
        assert out.aux_logits1 is not None and out.aux_logits2 is not None
    logits = out if isinstance(out, torch.Tensor) else out[0]
    assert logits.shape[0] == 2 and torch.isfinite(logits).all()
    _loss(out).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name,dims", [("cnn1d", 1), ("cnn3d", 3)])
@pytest.mark.parametrize("norm", NORMS)
def test_small_cnns_take_every_norm(name, dims, norm):
    model = create_model(name, norm=norm, width=4, num_classes=3)
    kinds = {type(m).__name__ for m in model.modules()}
    expected = {"batch": f"BatchNorm{dims}d", "instance": f"InstanceNorm{dims}d",
                "group": "GroupNorm", "layer": "GroupNorm", "none": None}[norm]
    if expected:
        assert expected in kinds
    else:
        assert not any("Norm" in k for k in kinds)
    x = torch.randn(2, *get_spec(name).small_input)
    model(x).sum().backward()
    assert model[0][0].weight.grad is not None  # the first ConvBlock's conv learns
    with pytest.raises(FaceganError, match="unknown norm"):
        create_model(name, norm="weird")
