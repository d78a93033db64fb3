"""Checkpoints that load "weights only" but are still hostile or damaged: one line naming the
file (exit 2, no traceback), refused before anything large is allocated, nothing overwritten."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from facegan.cli import main
from facegan.errors import FaceganError
from facegan.models.registry import build
from facegan.train import TrainConfig, checkpoint, training_loop

G_CFG = {"z_dim": 8, "ngf": 4, "resolution": 16}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-ckpt")
    np.save(root / "c.npy", np.random.default_rng(0).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8))
    training_loop(TrainConfig(data=str(root / "c.npy"), out=str(root / "run"), kimg=0.016, resolution=16, g=G_CFG,
                              d={"ndf": 4}, batch=8, precision="fp32", progress=False, bn_batches=1))
    return root / "run"


def _exported(path: Path, config, weights) -> Path:
    torch.save({"format": checkpoint.EXPORT_FORMAT, "config": config, "G_ema": weights, "which": "ema"}, path)
    return path


def _small_g(**over):
    return build("generator", "dcgan", {**G_CFG, **over}).state_dict()


def _one_line_refusal(args, capsys, *fragments) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert "weights_only" not in err and "allow_pickle" not in err
    return err


@pytest.mark.parametrize("config, weights, reason", [
    ("hello", None, "its config is str, not a dict"),
    ({"arch": "dcgan"}, None, "has no generator settings"),
    ({"arch": "dcgan", "g": {"z_dim": 62.5e9}}, None, "its config does not build a generator"),
    ({"arch": "dcgan", "g": {"z_dim": 62_500_000_000}}, None, "refused: its config asks for a generator of 512,000,0"),
    ({"arch": "nope", "g": {}}, None, "its config does not build a generator"),
    ({"arch": "dcgan", "g": G_CFG}, "wide", "do not match its config: "),
    ({"arch": "dcgan", "g": G_CFG}, "missing", "1 missing"),
    ({"arch": "dcgan", "g": G_CFG}, "strings", "not a tensor"),
    ({"arch": "dcgan", "g": G_CFG}, "none", "without a generator's weights"),
], ids=["config-str", "no-g", "float-z", "4tb-layer", "unknown-arch", "other-width", "missing-key", "not-tensors",
        "no-weights"])
def test_hostile_generator_files_are_one_line(tmp_path, capsys, config, weights, reason):
    sd = {"wide": lambda: _small_g(ngf=8), "missing": lambda: dict(list(_small_g().items())[1:]),
          "strings": lambda: {k: "x" for k in _small_g()}, "none": lambda: None, None: lambda: None}[weights]()
    path = _exported(tmp_path / "g.pt", config, sd)
    assert path.stat().st_size < 100_000
    _one_line_refusal(["sample", str(path), "-n", "2", "-o", str(tmp_path / "s")], capsys, str(path), reason)
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def test_a_2_gib_layer_is_refused_before_it_is_allocated(tmp_path):
    """z_dim 65,536 with ngf 64 makes DCGAN's first layer 65,536 x 512 x 4 x 4 floats = 2 GiB; the
    file holds the default-sized weights. The peak of a child process stays far below 2 GiB."""
    path = _exported(tmp_path / "g.pt", {"arch": "dcgan", "g": {"z_dim": 16_384, "ngf": 64}},
                     build("generator", "dcgan", {"z_dim": 16, "ngf": 4}).state_dict())  # 0.5 GiB layer: under the cap
    big = _exported(tmp_path / "big.pt", {"arch": "dcgan", "g": {"z_dim": 65_536, "ngf": 64}}, None)
    code = ("import resource, sys\nfrom facegan.cli import main\n"
            f"a = main(['sample', {str(path)!r}, '-n', '2', '-o', {str(tmp_path / 's')!r}])\n"
            f"b = main(['sample', {str(big)!r}, '-n', '2', '-o', {str(tmp_path / 's')!r}])\n"
            "print('RESULT', a, b, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    _, a, b, peak = out.stdout.splitlines()[-1].split()  # (sample names what it read on stdout first)
    assert (a, b) == ("2", "2"), out.stderr
    assert "do not match its config" in out.stderr and "parameters (at most" in out.stderr
    assert int(peak) < 1 << 30  # torch itself takes ~0.4 GB; the 0.5 / 2 GiB layers were never built


def test_a_compressed_record_is_refused_unread(tmp_path, capsys):
    """torch.save never compresses: a record deflated 1000:1 is refused from the zip directory."""
    good = _exported(tmp_path / "good.pt", {"arch": "dcgan", "g": G_CFG}, _small_g())
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(zipfile.ZipInfo("good/data/998"), bytes(64 << 20), compress_type=zipfile.ZIP_DEFLATED)  # ~64 KB
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(FaceganError, match="bomb.pt: refused: the record 'good/data/998' is compressed"):
            checkpoint.load(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # 64 MiB were never inflated
    _one_line_refusal(["sample", str(bomb), "-n", "2", "-o", str(tmp_path / "s")], capsys, "bomb.pt", "compressed")


def test_nan_weights_are_not_sampled_or_exported(tmp_path, capsys):
    sd = _small_g()
    sd[next(k for k, v in sd.items() if v.is_floating_point())].fill_(float("nan"))
    path = _exported(tmp_path / "nan.pt", {"arch": "dcgan", "g": G_CFG}, sd)
    _one_line_refusal(["sample", str(path), "-n", "8", "-o", str(tmp_path / "s")], capsys, "nan.pt", "NaN or infinite")
    assert not (tmp_path / "s").exists()


def test_a_damaged_file_gets_no_unsafe_advice(tmp_path, capsys):
    good = _exported(tmp_path / "good.pt", {"arch": "dcgan", "g": G_CFG}, _small_g())
    damaged = tmp_path / "damaged.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[: len(data) // 2] if info.filename.endswith("data.pkl") else data)
    _one_line_refusal(["sample", str(damaged), "-n", "2", "-o", str(tmp_path / "s")], capsys, "damaged.pt",
                      "not a readable checkpoint")
    (tmp_path / "text.pt").write_text("hello")
    _one_line_refusal(["sample", str(tmp_path / "text.pt"), "-n", "2", "-o", str(tmp_path / "s")], capsys,
                      "text.pt: not a readable checkpoint")


def test_resume_of_a_checkpoint_without_weights_is_one_line(run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    state = torch.load(run / "last.pt", weights_only=True)
    del state["G"], state["opt_g"]
    torch.save(state, broken / "last.pt")
    before = (broken / "last.pt").read_bytes()
    _one_line_refusal(["train", "--out", str(broken), "--resume", "--kimg", "0.032", "--no-progress"], capsys,
                      str(broken / "last.pt"), "'G' is missing")
    assert (broken / "last.pt").read_bytes() == before  # nothing lost


def test_a_malformed_loss_scaler_state_is_one_line(run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    state = torch.load(run / "last.pt", weights_only=True)
    state["amp"] = {"scaler_d": {"scale": float("nan")}, "scaler_g": "x"}
    torch.save(state, broken / "last.pt")
    _one_line_refusal(["train", "--out", str(broken), "--resume", "--kimg", "0.032", "--no-progress"], capsys,
                      str(broken / "last.pt"), "loss-scaler state 'amp' is malformed")


def test_export_never_writes_over_a_training_checkpoint(run, tmp_path, capsys):
    last = run / "last.pt"
    before = last.read_bytes()
    _one_line_refusal(["export", str(last), "-o", str(last)], capsys, "is the checkpoint being exported")
    other = tmp_path / "other.pt"
    shutil.copy(last, other)
    _one_line_refusal(["export", str(last), "-o", str(other)], capsys, "is a training checkpoint")
    assert last.read_bytes() == before and other.read_bytes() == before
    assert main(["export", str(last), "-o", str(tmp_path / "g.pt")]) == 0
    assert main(["export", str(last), "-o", str(tmp_path / "g.pt")]) == 0  # an export may be replaced
    capsys.readouterr()


def test_a_write_failing_inside_torch_save_is_one_line_and_keeps_the_last_checkpoint(run, tmp_path, monkeypatch):
    """On a full disk torch's zip writer raises RuntimeError('[enforce fail at inline_container.cc:672] .
    unexpected pos 576 vs 534') (seen on a 1 MB tmpfs); it becomes a WriteError naming the file."""
    target = tmp_path / "last.pt"
    shutil.copy(run / "last.pt", target)
    before = target.read_bytes()

    def failing_save(obj, f):
        f.write(b"PK\3\4partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(FaceganError, match=f"{target}: cannot write it: the checkpoint could not be written"):
        checkpoint.save_atomic({"x": 1}, target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]
