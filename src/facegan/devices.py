"""The one device rule of every command, and the CPU thread count.

``auto`` means the GPU when PyTorch sees one, else the CPU; ``cuda`` (or ``cuda:N``) without a
visible GPU is a :class:`~facegan.errors.FaceganError` (one line from the CLI, never a
traceback). ``train``, ``sample``, ``grade``, ``fid`` and ``stats`` all resolve ``--device``
here. torch is imported inside the functions so that the CLI's parsers stay cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from facegan.errors import FaceganError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: What ``--device`` accepts on the command line, besides ``cuda:N`` (as pytorch-fid does).
DEVICE_CHOICES = ("auto", "cpu", "cuda")
#: How ``--device`` is shown in help.
DEVICE_METAVAR = "{auto,cpu,cuda,cuda:N}"


def device_problem(name: str) -> str | None:
    """Why ``name`` is no ``--device`` (None when it is one); checked without importing torch."""
    kind, colon, index = str(name).strip().lower().partition(":")
    if (not colon and kind in DEVICE_CHOICES) or (kind == "cuda" and colon and index.isdigit()):
        return None
    return f"--device {name}: expected auto, cpu, cuda or cuda:N"


def device_arg(text: str) -> str:
    """argparse ``type=`` for ``--device``: auto, cpu, cuda or cuda:N."""
    import argparse

    problem = device_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem.split(": ", 1)[1])
    return text


def pick_device(name: str = "auto", local_rank: int = 0) -> "torch.device":
    """``auto`` → the (local) GPU when there is one, else the CPU; ``cpu``; ``cuda``; ``cuda:N``.

    ``local_rank`` picks the GPU of a torchrun process for ``auto``/``cuda``. Raises
    :class:`FaceganError` for ``cuda`` without a visible GPU, an index out of range or any other
    name.
    """
    import torch

    text = str(name).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    kind, _, index = text.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise FaceganError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise FaceganError(f"--device {name}: no CUDA GPU is visible to PyTorch (use --device cpu or auto)")
    count = torch.cuda.device_count()
    i = int(index) if index else local_rank % count
    if i >= count:
        raise FaceganError(f"--device {name}: there {'is' if count == 1 else 'are'} only {count} GPU(s) (cuda:0 ... cuda:{count - 1})")
    return torch.device("cuda", i)


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` at a command's entry (``None``: one per usable CPU).

    On a CPU shared with other jobs, fewer threads than cores can be much faster: a descheduled
    OpenMP thread stalls every parallel op. PyTorch's own default counts the affinity set but not
    a cgroup quota (a container given 1 of 8 CPUs would run 8 threads), so ``None`` caps it at
    :func:`usable_cpus`.
    """
    import torch

    if threads is None:
        threads = min(torch.get_num_threads(), usable_cpus())
    if threads < 1:
        raise FaceganError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- CPUs this process may use


def _cgroup_cpu_limit(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs granted by a cgroup CPU quota (containers, SLURM, systemd), or None when unlimited.

    cgroup v2 writes ``cpu.max`` as ``"QUOTA PERIOD"`` (``"max PERIOD"``: no limit); cgroup v1
    keeps ``cpu.cfs_quota_us`` (-1: no limit) and ``cpu.cfs_period_us``.
    """
    base = Path(root)
    try:
        quota, period = (base / "cpu.max").read_text().split()[:2]
        return float(quota) / float(period) if quota != "max" and float(period) > 0 else None
    except (OSError, ValueError):  # no cgroup v2 file (or an unreadable one): try v1
        pass
    try:
        quota_us = float((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = float((base / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity set (``taskset``, SLURM's binding), capped by
    a cgroup CPU quota (a container's ``--cpus``), at least 1.

    ``os.cpu_count()`` counts the machine's CPUs, not these: under ``taskset -c 0`` on a 2-core
    machine it says 2, and two threads then share one core (each parallel op waits for the
    descheduled one). A fractional quota rounds down (1.5 CPUs: 1 thread runs unthrottled).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, int(limit))
    return max(1, cpus)


# ----------------------------------------------------------------------------- what runs fast where


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_fast_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX (where bf16 autocast measured 2-3x faster); elsewhere
    PyTorch emulates bf16 (28x slower than fp32 in a one-layer test on an AVX2-only Zen 3)."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class Accelerator:
    """Which reduced precisions a device runs natively (the inputs of the precision rules)."""

    kind: str
    """``cpu`` or ``cuda``"""
    name: str
    """the CPU model or GPU name, for messages and the speed cache"""
    fast_bf16: bool
    """bf16 matrix units (CPU: AVX512-BF16/AMX; GPU: compute capability 8.0+, Ampere on)"""
    fast_fp16: bool
    """fp16 tensor cores (GPU: compute capability 7.0+, e.g. a T4); never on the CPUs here"""


def accelerator(device: "torch.device") -> Accelerator:
    """What ``device`` runs natively, asked of the hardware (the tests build :class:`Accelerator`
    by hand to fake a T4 or an A100)."""
    import torch

    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        bf16 = major >= 8 and torch.cuda.is_bf16_supported(including_emulation=False)
        return Accelerator("cuda", torch.cuda.get_device_name(device), fast_bf16=bf16, fast_fp16=major >= 7)
    return Accelerator("cpu", cpu_name(), fast_bf16=cpu_has_fast_bf16(), fast_fp16=False)


#: ``--precision`` values: ``auto`` picks among what the device runs natively (measured where it can).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def precision_candidates(requested: str, acc: Accelerator) -> list[str]:
    """What the speed check times for ``--precision requested``, fastest-expected first.

    ``auto`` offers only what the hardware runs natively: bf16 where it has bf16 units, else fp16
    with loss scaling where it has fp16 tensor cores (a T4), and always fp32 (TF32 on Ampere and
    later GPUs). Emulated bf16 is never a candidate: on an AVX2-only CPU it ran 28x slower.
    """
    if requested != "auto":
        return [requested]
    low = ["bf16"] if acc.fast_bf16 else ["fp16"] if acc.fast_fp16 else []
    return low + ["fp32"]


def precision_by_capability(requested: str, acc: Accelerator) -> str:
    """``--precision`` resolved without measuring (under torchrun, where the ranks would have to
    agree on a timing): the first candidate, i.e. reduced precision wherever it is native on a GPU.

    On a CPU this is bf16 only with AVX512-BF16/AMX. Small models on large GPUs can run faster in
    TF32 (the DCGAN on an H200: 19k vs 16k img/s) — the measured speed check finds that, the rule
    cannot.
    """
    return precision_candidates(requested, acc)[0]


def precision_problem(precision: str, acc: Accelerator) -> str | None:
    """Why an explicitly requested precision is a poor fit for ``acc`` (None when it is fine).

    fp16 autocast on a CPU has no fast kernels here; bf16 without bf16 units is emulated. The
    caller shows this as a warning: the user asked for it, so it is honoured but never silently.
    """
    if precision == "bf16" and not acc.fast_bf16:
        return (f"--precision bf16: {acc.name} has no bf16 units, so PyTorch emulates bf16 "
                "(28x slower than fp32 in a one-layer test on an AVX2 CPU); --precision auto picks what runs fast")
    if precision == "fp16" and not acc.fast_fp16:
        return (f"--precision fp16: {acc.name} has no fp16 tensor cores, so fp16 runs slower than fp32 there; "
                "--precision auto picks what runs fast")
    return None


def describe_precision(precision: str, device: "torch.device") -> str:
    """How a run computes, in words for its first line (``bf16 autocast``, ``fp16 autocast with loss
    scaling``, ``fp32``, ``fp32/TF32`` on a GPU)."""
    if precision == "bf16":
        return "bf16 autocast"
    if precision == "fp16":
        return "fp16 autocast with loss scaling"
    return "fp32/TF32" if device.type == "cuda" else "fp32"
