"""The hardware rules: how many CPUs the process may use (affinity, cgroup quota) and which
precision each device runs natively (capabilities faked: no GPU is needed to test the rules)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from facegan import devices
from facegan.devices import (precision_by_capability, precision_candidates, precision_problem,
                             usable_cpus)
from fakehw import A100, AMX, AVX2, P100, T4



# ----------------------------------------------------------------------------- CPUs


def _cgroup(tmp_path, v2=None, v1=None):
    root = tmp_path / "cgroup"
    root.mkdir()
    if v2 is not None:
        (root / "cpu.max").write_text(v2)
    if v1 is not None:
        (root / "cpu").mkdir()
        (root / "cpu" / "cpu.cfs_quota_us").write_text(v1[0])
        (root / "cpu" / "cpu.cfs_period_us").write_text(v1[1])
    return str(root)


@pytest.mark.parametrize("v2, v1, want", [
    ("max 100000\n", None, None),            # v2, unlimited
    ("150000 100000\n", None, 1.5),          # v2, a container with --cpus 1.5
    (None, ("-1\n", "100000\n"), None),      # v1, unlimited
    (None, ("200000\n", "100000\n"), 2.0),   # v1, two CPUs
    (None, None, None),                      # no cgroup files at all
    ("garbage\n", None, None),               # unreadable: no limit assumed
])
def test_cgroup_quota_is_read_from_v2_and_v1(tmp_path, v2, v1, want):
    assert devices._cgroup_cpu_limit(_cgroup(tmp_path, v2, v1)) == want


@pytest.mark.parametrize("affinity, quota, want", [
    ({0, 1, 2, 3}, None, 4), ({0}, None, 1), ({0, 1, 2, 3}, 2.0, 2), ({0, 1, 2, 3}, 1.5, 1), ({0, 1}, 0.5, 1),
    ({0, 1}, 8.0, 2),
])
def test_usable_cpus_is_the_affinity_set_capped_by_the_quota(monkeypatch, affinity, quota, want):
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 64)  # the machine's count never decides
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: affinity)
    monkeypatch.setattr(devices, "_cgroup_cpu_limit", lambda root="": quota)
    assert usable_cpus() == want


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_a_process_pinned_to_one_cpu_counts_one():
    """The real thing, as ``taskset -c 0`` does it: a child pinned to one CPU."""
    cpu = min(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", "from facegan.devices import usable_cpus; print(usable_cpus())"],
                         capture_output=True, text=True, check=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    assert out.stdout.strip() == "1"


# ----------------------------------------------------------------------------- precision


@pytest.mark.parametrize("acc, want", [
    (AVX2, ["fp32"]), (AMX, ["bf16", "fp32"]), (T4, ["fp16", "fp32"]), (A100, ["bf16", "fp32"]), (P100, ["fp32"]),
])
def test_auto_offers_only_what_the_hardware_runs_natively(acc, want):
    assert precision_candidates("auto", acc) == want
    assert precision_by_capability("auto", acc) == want[0]


def test_an_explicit_precision_is_kept_and_a_poor_fit_is_said():
    assert precision_candidates("bf16", T4) == ["bf16"]
    assert precision_by_capability("fp32", A100) == "fp32"
    assert "emulates bf16" in precision_problem("bf16", T4) and "Tesla T4" in precision_problem("bf16", T4)
    assert "emulates bf16" in precision_problem("bf16", AVX2)
    assert "no fp16 tensor cores" in precision_problem("fp16", P100)
    assert all(precision_problem(p, A100) is None for p in ("bf16", "fp16", "fp32"))
    assert precision_problem("fp32", AVX2) is None


def test_a_real_cuda_device_is_asked_its_capability(monkeypatch):
    """accelerator() reads the compute capability: 7.5 (T4) -> fp16 only; 8.0 (A100) -> bf16 too."""
    for cap, name, bf16, fp16 in [((7, 5), "Tesla T4", False, True), ((8, 0), "NVIDIA A100", True, True),
                                  ((6, 0), "Tesla P100", False, False)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None, c=cap: c)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None, n=name: n)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, b=bf16: b)
        acc = devices.accelerator(torch.device("cuda", 0))
        assert (acc.kind, acc.name, acc.fast_bf16, acc.fast_fp16) == ("cuda", name, bf16, fp16)


def test_no_preset_forces_a_precision():
    """A preset that said bf16 ran emulated bf16 on CPUs and GPUs without it (8 silent minutes)."""
    from facegan.train.presets import PRESETS

    assert all("precision" not in p.overrides for p in PRESETS.values())


def test_the_gpu_preset_on_a_faked_t4_times_fp16_and_fp32_never_bf16(tmp_path, monkeypatch):
    from facegan.train import autotune
    from facegan.train.config import TrainConfig
    from facegan.train.presets import resolve

    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "cache"))
    given = resolve("gpu", {"data": str(tmp_path / "c.npy"), "out": str(tmp_path / "r"), "kimg": 1, "device": "cpu"})
    cfg = TrainConfig(**given)
    tried = []

    def timer(_cfg, _images, c):
        tried.append((c.precision, c.matmul_convs, c.threads))
        return {"fp16": 300.0, "fp32": 200.0}[c.precision]

    res = autotune.tune(cfg, np.zeros((8, 64, 64, 3), np.uint8), timer=timer, acc=T4, use_cache=False)
    assert [t[0] for t in tried] == ["fp16", "fp32"] and res.best.precision == "fp16"
    assert {t[1] for t in tried} == {"off"}  # the 4x4 matrix products are a CPU question
    assert "fp16" in res.report()


def test_the_default_thread_count_respects_a_cgroup_quota(monkeypatch):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(devices, "usable_cpus", lambda: 1)  # e.g. a container with --cpus 1
        devices.set_threads(None)
        assert torch.get_num_threads() == 1
        devices.set_threads(2)  # an explicit --threads is the user's to choose
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
