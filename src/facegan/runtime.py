"""Process-wide torch settings, set once at a command's entry and nowhere else.

Library functions (the training loop, the sampler, the FID engine) never change global state
they do not restore; the commands that own the process call :func:`configure_torch` first.
What it sets, and why:

============================ =================================================================
``set_flush_denormal(True)`` CPU: denormal floats (tiny gradients once D saturates) made CPU
                             training 4-7x slower on real CelebA; flushing them to zero costs
                             nothing measurable in quality
``set_num_threads(n)``       CPU: ``--threads``; one per core by default. With another process
                             on one of two cores, 2 threads fell to a fifth of 1 thread's speed
``cudnn.benchmark``          GPU: fixed shapes, so the autotuned kernels pay after one step
TF32 matmul / cuDNN          GPU: tensor cores for fp32 training (sampling turns TF32 off for
                             itself, see :mod:`facegan.models.sampling`)
``mallopt`` (scoring, CPU)   glibc keeps freed blocks instead of mapping fresh pages for each
                             Inception batch (10-20 % of the forward time, measured), see
                             :func:`keep_freed_memory`
============================ =================================================================

The Python API (``facegan.fid.compute_fid`` in a notebook) changes none of this: call
``configure_torch("cpu", scoring=True)`` once first for the commands' speed.
"""

from __future__ import annotations

import torch


def configure_torch(device: torch.device | str, threads: int | None = None, *, scoring: bool = False) -> None:
    """Apply the settings above for a process that trains, samples or (``scoring``) computes FID
    features on ``device``."""
    from facegan.devices import set_threads

    device = torch.device(device)
    set_threads(threads)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
        if scoring:
            keep_freed_memory()
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def keep_freed_memory() -> bool:
    """Let glibc's malloc reuse freed blocks instead of mapping fresh pages for each batch.

    Inception activations are tens of MB per tensor; above glibc's mmap threshold each is a fresh
    ``mmap`` whose pages fault in (zeroed by the kernel) on every batch and go back to the OS on
    free — measured here as 10–20 % of the forward time, in system time. Raising the mmap and trim
    thresholds keeps that memory in the heap for the next batch (the process keeps its peak
    footprint). Process-wide, so only entry points call it (through :func:`configure_torch`); returns
    whether it applied (glibc only).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, (1 << 31) - 1))
    except (OSError, AttributeError):
        return False
