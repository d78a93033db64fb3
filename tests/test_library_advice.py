"""Library error text never reaches the user as it is: PyTorch's advice to load with
``weights_only=False`` and NumPy's ``allow_pickle`` advice would make a user unsafe, and
``invalid <lambda> value`` says nothing. Each case is produced for real and the message read."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from facegan.cli import main
from facegan.errors import FaceganError
from facegan.safeload import library_reason

UNSAFE = ("weights_only", "allow_pickle", "<lambda>", "Traceback")


def _clean(err: str) -> None:
    for word in UNSAFE:
        assert word not in err, err


def test_the_libraries_really_give_that_advice(tmp_path):
    """The texts this module guards against exist (so the tests below test something)."""
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(tmp_path / "obj.npy", allow_pickle=False)
    torch.save({"format": "facegan-train-2", "f": np.float32(1)}, tmp_path / "np.pt")
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        torch.load(tmp_path / "np.pt", weights_only=True)
    assert library_reason(ValueError("Object arrays cannot be loaded when allow_pickle=False")) == "ValueError"
    assert library_reason(OSError("disk on fire")) == "OSError: disk on fire"


def test_an_object_npy_as_training_data(tmp_path, capsys):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["train", "--data", str(tmp_path / "obj.npy"), "--out", str(tmp_path / "r"), "--kimg", "1"]) == 2
    err = capsys.readouterr().err
    assert "obj.npy" in err and "Python objects (a pickle)" in err
    _clean(err)


def test_an_object_array_in_statistics(tmp_path, capsys):
    from facegan.fid.stats import Stats

    np.savez(tmp_path / "obj.npz", mu=np.array([{"a": 1}], dtype=object), sigma=np.eye(1))
    with pytest.raises(FaceganError) as exc:
        Stats.load(tmp_path / "obj.npz")
    assert "obj.npz" in str(exc.value) and "Python objects" in str(exc.value)
    _clean(str(exc.value))


def test_a_checkpoint_that_needs_a_non_tensor_global(tmp_path, capsys):
    torch.save({"format": "facegan-train-2", "f": np.float32(1)}, tmp_path / "np.pt")
    assert main(["sample", str(tmp_path / "np.pt"), "-n", "1", "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "np.pt: refused: the file asks to run code" in err
    _clean(err)


def test_a_bad_number_for_an_optional_option(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", "x.npy", "--out", str(tmp_path / "r"), "--kimg", "abc"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --kimg: invalid number (or none) value: 'abc'" in err
    _clean(err)
