"""`facegan cnn`: the lecture's worked examples from the command line."""

import pytest

from facegan.cli import main
from facegan.cnn.zoo import list_models


def run(capsys, *argv):
    code = main(["cnn", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("stride,size", [("1", 5), ("2", 3)])
def test_size_seven_by_seven(capsys, stride, size):
    code, out, _ = run(capsys, "size", "7", "3", stride)
    assert code == 0 and out.strip().endswith(f"= {size}")


def test_size_stride_three_does_not_fit(capsys):
    code, out, err = run(capsys, "size", "7", "3", "3")
    assert code == 2 and out == ""
    assert err.startswith("facegan: error: doesn't fit") and "Traceback" not in err


def test_size_with_volumes_and_parameters(capsys):
    code, out, _ = run(capsys, "size", "32", "5", "1", "2", "--channels", "3", "--filters", "10")
    assert code == 0
    assert "32x32x3 input, 10 5x5 filters at stride 1, pad 2 -> 32x32x10 output" in out
    assert "= 760 parameters" in out


def test_params_and_receptive_field(capsys):
    assert run(capsys, "params", "5", "3", "10")[1].strip().endswith("= 760 parameters")
    assert "sees 7x7" in run(capsys, "rf", "3", "3", "3")[1]
    code, _, err = run(capsys, "rf", "3", "x")
    assert code == 2 and "F or F/S" in err


def test_transposed_size(capsys):
    code, out, _ = run(capsys, "size", "32", "4", "2", "1", "--transposed")
    assert code == 0 and out.strip().endswith("= 64")


def test_list_shows_every_registered_model(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    names = {line.split()[0] for line in out.splitlines()[1:]}
    assert set(list_models()) <= names
    assert "62.38M" in next(line for line in out.splitlines() if line.startswith("alexnet "))


def test_summary_alexnet_reproduces_the_lecture_rows(capsys):
    code, out, _ = run(capsys, "summary", "alexnet", "--input", "3x227x227")
    assert code == 0
    first = out.index("[55x55x96] CONV1: 96 11x11 filters at stride 4, pad 0")
    last = out.index("[1000] FC8: 1000 neurons")
    assert first < out.index("[6x6x256] MAX POOL3: 3x3 filters at stride 2") < last
    assert "total parameters: 62,378,344" in out


def test_summary_options_and_errors(capsys):
    code, out, _ = run(capsys, "summary", "alexnet", "--set", "groups=2")
    assert code == 0 and "CONV2: 256 5x5 filters at stride 1, pad 2, groups 2" in out
    code, out, _ = run(capsys, "summary", "cnn3d", "--set", "norm=instance", "--input", "3x4x16x16", "--all")
    assert code == 0 and "InstanceNorm" in out and "RELU1" in out
    code, _, err = run(capsys, "summary", "alexnet", "--input", "3x224x224")
    assert code == 2 and "does not accept an input of 3x224x224" in err
    code, _, err = run(capsys, "summary", "lenet")
    assert code == 2 and "lenet5" in err
    code, _, err = run(capsys, "summary", "resnet18", "--set", "nope")
    assert code == 2 and "KEY=VALUE" in err


def test_summary_input_channels_first_or_last(capsys):
    code, first, _ = run(capsys, "summary", "alexnet", "--input", "3x227x227")
    code_last, last, _ = run(capsys, "summary", "alexnet", "--input", "227x227x3")
    assert code == code_last == 0 and first == last and "[55x55x96] CONV1" in last
    code, out, _ = run(capsys, "summary", "lenet5", "--input", "32x32x1")
    assert code == 0 and "[32x32x1] INPUT" in out
    code, out, _ = run(capsys, "summary", "lenet5", "--set", "in_channels=3", "--input", "32x32x3")
    assert code == 0 and "[32x32x3] INPUT" in out
    code, out, _ = run(capsys, "summary", "cnn3d", "--input", "16x112x112x3")  # DxHxWxC
    assert code == 0 and "[16x112x112x3] INPUT" in out


def test_summary_input_that_fits_neither_way_says_what_it_expects(capsys):
    code, _, err = run(capsys, "summary", "alexnet", "--input", "227x227x4")
    assert code == 2 and err.count("\n") == 1
    assert "alexnet takes 3 input channel(s): expected CxHxW (channels first, e.g. 3x227x227) or HxWxC" in err
    with pytest.raises(SystemExit):
        main(["cnn", "summary", "alexnet", "--input", "227 by 227"])
    assert "expected CxHxW" in capsys.readouterr().err
