"""The one device rule: auto, cpu, cuda[:N]; a missing GPU is a one-line error, never a traceback."""

from __future__ import annotations

import pytest
import torch

from facegan.devices import pick_device, set_threads
from facegan.errors import FaceganError


def test_auto_follows_the_gpu_and_cpu_is_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device("CPU") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("auto") == torch.device("cuda", 0)
    assert pick_device("cuda", local_rank=3) == torch.device("cuda", 1)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(FaceganError, match="only 2 GPU"):
        pick_device("cuda:2")


def test_cuda_without_a_gpu_and_unknown_names_are_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FaceganError, match="--device cuda: no CUDA GPU is visible"):
        pick_device("cuda")
    with pytest.raises(FaceganError, match="expected auto, cpu, cuda or cuda:N"):
        pick_device("gpu")


def test_threads_are_set_and_checked():
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        set_threads(None)
        assert torch.get_num_threads() == 1
        with pytest.raises(FaceganError, match="--threads must be at least 1"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)
