"""The lecture's worked examples of convolution arithmetic, checked against PyTorch itself."""

import pytest
import torch
from torch import nn

from facegan.cnn import (
    DoesNotFitError,
    conv_output_size,
    conv_params,
    conv_transpose_output_size,
    receptive_field,
    stack_output_sizes,
)
from facegan.errors import FaceganError


def test_seven_by_seven_input_three_by_three_filter():
    assert conv_output_size(7, 3, stride=1) == 5
    assert conv_output_size(7, 3, stride=2) == 3


def test_stride_three_does_not_fit_where_pytorch_floors():
    with pytest.raises(DoesNotFitError, match="doesn't fit") as exc:
        conv_output_size(7, 3, stride=3)
    assert "2.33" in str(exc.value)
    assert isinstance(exc.value, FaceganError)  # the CLI prints it as a message
    # PyTorch silently floors to 2; strict=False reproduces that.
    out = nn.Conv2d(1, 1, 3, stride=3)(torch.zeros(1, 1, 7, 7))
    assert out.shape[-1] == 2 == conv_output_size(7, 3, stride=3, strict=False)


def test_filter_larger_than_padded_input_never_fits():
    with pytest.raises(DoesNotFitError, match="spans 5"):
        conv_output_size(3, 5, strict=False)
    with pytest.raises(DoesNotFitError, match="spans 5"):
        conv_output_size(3, 3, dilation=2)  # a dilated 3-tap filter spans 5


def test_padding_keeps_the_size():
    # 32x32x3 input, 10 5x5 filters at stride 1, pad 2 -> 32x32x10
    assert conv_output_size(32, 5, stride=1, padding=2) == 32
    out = nn.Conv2d(3, 10, 5, 1, 2)(torch.zeros(1, 3, 32, 32))
    assert tuple(out.shape[1:]) == (10, 32, 32)


def test_ten_five_by_five_by_three_filters_have_760_parameters():
    assert conv_params(5, 3, 10) == 760
    assert conv_params(5, 3, 10) == sum(p.numel() for p in nn.Conv2d(3, 10, 5).parameters())
    assert conv_params(5, 3, 10, bias=False) == 750
    assert conv_params((3, 3, 3), 4, 8) == sum(p.numel() for p in nn.Conv3d(4, 8, 3).parameters())
    assert conv_params((5,), 2, 6) == sum(p.numel() for p in nn.Conv1d(2, 6, 5).parameters())
    assert conv_params(3, 4, 8, groups=2) == sum(p.numel() for p in nn.Conv2d(4, 8, 3, groups=2).parameters())
    with pytest.raises(FaceganError, match="groups"):
        conv_params(3, 4, 6, groups=4)


@pytest.mark.parametrize(
    "n,f,s,p,d", [(7, 3, 1, 0, 1), (227, 11, 4, 0, 1), (64, 4, 2, 1, 1), (31, 3, 2, 1, 2), (9, 1, 4, 0, 1)]
)
def test_agrees_with_pytorch_when_it_fits(n, f, s, p, d):
    out = nn.Conv2d(1, 1, f, s, p, dilation=d)(torch.zeros(1, 1, n, n))
    assert conv_output_size(n, f, s, p, d) == out.shape[-1]


@pytest.mark.parametrize("n,f,s,p,op", [(8, 4, 2, 1, 0), (1, 4, 1, 0, 0), (5, 3, 2, 1, 1), (7, 5, 3, 2, 2)])
def test_transposed_twin_agrees_with_pytorch_and_inverts_conv(n, f, s, p, op):
    deconv = nn.ConvTranspose2d(1, 1, f, s, p, output_padding=op)
    out = conv_transpose_output_size(n, f, s, p, op)
    assert deconv(torch.zeros(1, 1, n, n)).shape[-1] == out
    assert conv_output_size(out, f, s, p, strict=False) == n  # the conv maps it back


def test_transposed_errors():
    with pytest.raises(DoesNotFitError, match="output_padding"):
        conv_transpose_output_size(4, 3, stride=2, output_padding=2)
    with pytest.raises(DoesNotFitError, match="leaves"):
        conv_transpose_output_size(1, 1, stride=1, padding=1)


def test_receptive_fields():
    assert receptive_field([3, 3, 3]) == 7  # three 3x3 convs see what one 7x7 sees
    assert receptive_field([3, 3]) == 5
    assert receptive_field([7]) == 7
    assert receptive_field([(3, 2), 3]) == 7  # the stride doubles the next layer's step
    assert receptive_field([(3, 1, 2), (3, 1, 4)]) == 1 + 4 + 8  # dilated stack


def test_receptive_field_matches_gradient_support():
    """The input positions that influence one output are exactly the receptive field."""
    stack = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3))
    x = torch.randn(1, 1, 21, 21, requires_grad=True)
    stack(x)[0, 0, 1, 1].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero().flatten()
    assert len(rows) == receptive_field([3, (3, 2), 3]) == 9


def test_stack_sizes_through_alexnet_and_failures_name_the_layer():
    assert stack_output_sizes(227, [(11, 4, 0), (3, 2), (5, 1, 2), (3, 2)]) == [55, 27, 27, 13]
    with pytest.raises(DoesNotFitError, match="layer 1"):
        stack_output_sizes(224, [(11, 4, 0)])  # why the lecture's AlexNet takes 227, not 224


@pytest.mark.parametrize("bad", [dict(n=0, f=3), dict(n=7, f=3, stride=0), dict(n=7, f=3, padding=-1)])
def test_invalid_arguments_are_errors(bad):
    with pytest.raises(FaceganError):
        conv_output_size(**bad)
