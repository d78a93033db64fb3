"""Normalisation as in the lecture: BatchNorm depends on the batch in train mode, not in eval mode;
instance/group/layer norm never do."""

import pytest
import torch

from facegan.models.blocks import ConvBlock


def _first_sample(block, batch):
    return block(batch)[0]


def test_batchnorm_train_uses_the_batch_eval_uses_running_averages():
    torch.manual_seed(0)
    block = ConvBlock(3, 8, norm="batch", act="none")
    x = torch.randn(4, 3, 8, 8)
    other = x.clone()
    other[1:] = torch.randn(3, 3, 8, 8) * 3 + 2  # same first sample, different batch-mates

    block.train()
    before = block[1].running_mean.clone()
    a, b = _first_sample(block, x), _first_sample(block, other)
    assert not torch.allclose(a, b, atol=1e-3)  # sample 0's output depends on the others
    assert not torch.equal(block[1].running_mean, before)  # running averages were updated
    # train mode normalises each channel over the batch: mean 0, variance 1
    y = block(x)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(8), atol=1e-5)
    assert torch.allclose(y.var((0, 2, 3), unbiased=False), torch.ones(8), atol=1e-3)

    block.eval()
    frozen = block[1].running_mean.clone()
    with torch.no_grad():
        a, b = _first_sample(block, x), _first_sample(block, other)
        assert torch.allclose(a, b, atol=1e-6)  # eval: each sample on its own
        assert torch.equal(block[1].running_mean, frozen)  # and nothing is updated
        assert not torch.allclose(block(x), y, atol=1e-3)  # the two modes differ


@pytest.mark.parametrize("norm", ["instance", "group", "layer"])
def test_per_sample_norms_ignore_the_batch_in_both_modes(norm):
    torch.manual_seed(0)
    block = ConvBlock(3, 8, norm=norm, act="none")
    x = torch.randn(4, 3, 8, 8)
    other = x.clone()
    other[1:] = torch.randn(3, 3, 8, 8) * 3 + 2
    for mode in (True, False):
        block.train(mode)
        with torch.no_grad():
            assert torch.allclose(_first_sample(block, x), _first_sample(block, other), atol=1e-5)


def test_layer_norm_normalises_each_sample_over_all_channels_and_positions():
    block = ConvBlock(3, 8, norm="layer", act="none")
    y = block(torch.randn(2, 3, 8, 8) * 5 + 1)
    assert torch.allclose(y.mean((1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(y.var((1, 2, 3), unbiased=False), torch.ones(2), atol=1e-3)
