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
============================ =================================================================
"""

from __future__ import annotations

import torch


def configure_torch(device: torch.device | str, threads: int | None = None) -> None:
    """Apply the settings above for a process that trains or samples on ``device``."""
    from facegan.devices import set_threads

    device = torch.device(device)
    set_threads(threads)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
