"""Several processes, one model: ``torchrun --nproc_per_node=K -m facegan train ...``.

torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`setup` reads them, joins the
process group (NCCL between GPUs, gloo on CPUs) and says which device this process owns. Without
torchrun it is a no-op and everything runs as rank 0 of 1.

Only rank 0 writes files and prints; every rank keeps identical weights because DDP averages
the gradients, and they all stop on the same step because stop decisions are all-reduced.
"""

from __future__ import annotations

import inspect
import gc
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist

from facegan.devices import pick_device  # noqa: F401  (the one device rule, re-exported)


@dataclass
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the torchrun process group when launched by torchrun; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, dev)


def teardown(info: DistInfo, destroy: bool = True) -> None:
    """Leave the process group together: the barrier keeps a rank from leaving while rank 0 is
    still writing its checkpoint and plots.

    ``destroy=False`` leaves the group to die with the process, for callers that exit at once with
    ``os._exit``: on torch 2.14 with gloo, ``destroy_process_group`` aborted a rank now and then
    ("terminate called without an active exception", 2 runs in 12 here; 0 in 14 without it).
    """
    if info.distributed and dist.is_initialized():
        gc.collect()  # free the DDP reducers (they hold gloo work) while everything is alive
        dist.barrier()
        if destroy:
            dist.destroy_process_group()


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any rank (stop together, never deadlock)."""
    return any_ranks([flag], info)[0]


def any_ranks(flags: Sequence[bool], info: DistInfo) -> list[bool]:
    """:func:`any_rank` for several flags in one all-reduce (the loop asks two questions per step)."""
    if not info.distributed:
        return list(flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in t.tolist()]


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (just ``[obj]`` alone)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def wrap_ddp(module: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """``DistributedDataParallel(module)`` when distributed, else the module itself."""
    if not info.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.device.index] if info.device.type == "cuda" else None
    # BatchNorm buffers need no syncing each forward: D is always in train mode and the EMA
    # generator's are re-estimated for sampling. (Newer torch renamed the option.)
    params = inspect.signature(DDP.__init__).parameters
    sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    return DDP(module, device_ids=ids, **sync)


def check_in_sync(module: torch.nn.Module, info: DistInfo) -> list[float]:
    """One checksum of ``module``'s weights per rank; raises if the ranks' weights differ."""
    with torch.no_grad():
        total = float(sum(p.detach().double().sum() for p in module.parameters()))
    sums = gather_objects(total, info)
    if max(sums) != min(sums):
        raise RuntimeError(f"DDP ranks hold different weights (checksums {sums}): gradients were not averaged")
    return sums
