"""Checkpoints: read as weights only (a payload never runs), the previous format still samples."""

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facegan.errors import FaceganError
from facegan.train import checkpoint

DATA = Path(__file__).parent / "data"


class _Payload:
    """Unpickling this runs ``os.system`` — the classic pickle attack."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_payload_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "config": {}, "G": _Payload(marker)}, evil)
    with pytest.raises(FaceganError, match=r"evil\.pt: refused: the file asks to run code.*system"):
        checkpoint.load(evil)
    assert not marker.exists()


def test_the_cli_refuses_it_in_one_line(tmp_path, capsys):
    from facegan.cli import main

    marker = tmp_path / "pwned"
    torch.save({"format": checkpoint.FORMAT, "G_ema": _Payload(marker)}, tmp_path / "last.pt")
    assert main(["sample", str(tmp_path / "last.pt"), "-n", "2", "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_format_1_checkpoints_still_load_and_sample(tmp_path):
    """tests/data/facegan-train-1.pt was written by the previous format's code (DCGAN, z 8, ngf 4,
    8x8); it samples the same first four images it did then."""
    from facegan.sample import generate, load_generator

    G = load_generator(DATA / "facegan-train-1.pt")
    assert (G.z_dim, G.resolution) == (8, 8)
    assert np.array_equal(generate(G, [0, 1, 2, 3]), np.load(DATA / "facegan-train-1-samples.npy"))
    state = checkpoint.load(DATA / "facegan-train-1.pt")
    assert state["config"]["g"] == {"z_dim": 8, "ngf": 4, "norm": "batch", "resolution": 8}
    assert state["config"]["d"]["dropout"] == 0.1 and state["config"]["beta1_d"] == 0.5


@pytest.mark.numeric
def test_format_1_runs_resume(tmp_path):
    from facegan.train import config_for_resume, training_loop

    run = tmp_path / "old"
    run.mkdir()
    shutil.copy(DATA / "facegan-train-1.pt", run / "last.pt")
    np.save(tmp_path / "c.npy", np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8))
    cfg = config_for_resume(run, {"kimg": 0.032, "data": str(tmp_path / "c.npy"), "progress": False})
    res = training_loop(cfg, resume=True)
    assert res.status == "done" and res.nimg == 32
    assert checkpoint.load(run / "last.pt")["format"] == checkpoint.FORMAT
    # the data differs from the one it was trained on: allowed, said and recorded
    import json

    events = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    changed = [e for e in events if e.get("event") == "data_changed"]
    assert len(changed) == 1 and changed[0]["to"] == str(tmp_path / "c.npy")


def test_new_checkpoints_load_with_weights_only(tmp_path):
    from facegan.train import TrainConfig, training_loop

    np.save(tmp_path / "c.npy", np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8))
    training_loop(TrainConfig(data=str(tmp_path / "c.npy"), out=str(tmp_path / "r"), kimg=0.008, resolution=8,
                              g={"z_dim": 4, "ngf": 4}, d={"ndf": 4}, batch=8, progress=False, bn_batches=1))
    state = torch.load(tmp_path / "r" / "last.pt", weights_only=True)  # plain torch, no allow-list
    assert state["format"] == "facegan-train-2"


def test_damaged_files_are_not_called_hostile(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04not really")
    with pytest.raises(FaceganError, match="junk.pt: not a readable checkpoint"):
        checkpoint.load(tmp_path / "junk.pt")
    pickle  # (imported for readers: the refusal is pickle's UnpicklingError turned into a message)
