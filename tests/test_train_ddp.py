"""DistributedDataParallel on the CPU: torchrun, gloo, 2 processes, a tiny model."""

import os
import socket
import subprocess
import sys

import numpy as np

from facegan.train.checkpoint import load


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_gloo(tmp_path):
    data = tmp_path / "tiny.npy"
    np.save(data, np.random.default_rng(0).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "facegan", "train", "--data", str(data), "--out", str(out),
           "--resolution", "16", "--g.z-dim", "8", "--g.ngf", "4", "--d.ndf", "4", "--batch", "8", "--kimg", "0.048",
           "--tick-kimg", "0.016", "--precision", "fp32", "--device", "cpu", "--d.dropout", "0.1",
           "--bn-batches", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "over 2 processes" in res.stdout
    assert res.stdout.count("facegan train: finished") == 1  # only rank 0 reports
    state = load(out / "last.pt")
    assert state["world_size"] == 2 and state["step"] == 6 and state["nimg"] == 48
    assert len(state["rng"]) == 2  # each rank's random streams, for an exact resume
    assert state["rng"][0]["noise"].tolist() != state["rng"][1]["noise"].tolist()  # ranks draw different z
    c0, c1 = state["rank_checksums"]
    assert c0 == c1  # gradients were averaged: both ranks hold the same weights
