"""The one device rule of every command, and the CPU thread count.

``auto`` means the GPU when PyTorch sees one, else the CPU; ``cuda`` (or ``cuda:N``) without a
visible GPU is a :class:`~facegan.errors.FaceganError` (one line from the CLI, never a
traceback). ``train``, ``sample``, ``grade``, ``fid`` and ``stats`` all resolve ``--device``
here. torch is imported inside the functions so that the CLI's parsers stay cheap.
"""

from __future__ import annotations

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
    """``torch.set_num_threads(threads)`` at a command's entry (``None``: leave PyTorch's default).

    On a CPU shared with other jobs, fewer threads than cores can be much faster: a descheduled
    OpenMP thread stalls every parallel op.
    """
    if threads is None:
        return
    if threads < 1:
        raise FaceganError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
