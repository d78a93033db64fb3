"""Training batches straight from the uint8 image cache held in memory (or on the GPU).

The whole cache (N, H, W, 3) uint8 is loaded once — 10,000 faces at 64×64 are 123 MB, all of
CelebA 2.4 GB — so a batch costs one gather and one conversion, with no JPEG decoding, no
worker processes and no per-image Python. That, more than anything in the model, is what makes
training faster than the ImageFolder + DataLoader recipe on a small CPU.

Order is a pure function of ``(seed, epoch)``: each epoch draws one permutation (and one set of
flip decisions) from a generator seeded by both, so the loader's whole state is ``(epoch,
position)`` and a resumed run sees exactly the batches the uninterrupted one would have. Under
DDP every rank draws the same permutation and takes its own interleaved slice.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from facegan.data.transform import to_model_range

#: Mixes the epoch into the seed so consecutive epochs get unrelated permutations.
_EPOCH_STRIDE = 1_000_003


class BatchLoader:
    """Endless shuffled batches of float images in [-1, 1] from a uint8 cache.

    Args:
        images: uint8 array or tensor (N, H, W, 3) (a memory map is read into memory once).
        batch_size: images per batch *on this rank*.
        device: where the cache lives and batches are made (``cuda`` keeps it on the GPU).
        flip: mirror each image left-right with probability 1/2 (decided per epoch).
        seed: the base of every permutation.
        rank, world_size: this process's slice under DDP (every rank must use the same seed).
        channels_last: return batches in channels_last memory format (free: no copy).
        dtype: floating type of the batches.
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        flip: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ):
        data = torch.from_numpy(np.array(images)) if isinstance(images, np.ndarray) else images  # copy: reads a memmap once
        if data.dtype != torch.uint8 or data.ndim != 4 or data.shape[-1] != 3:
            raise ValueError(f"expected uint8 images (N, H, W, 3), got {data.dtype} {tuple(data.shape)}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of {world_size}")
        self.per_rank = len(data) // world_size
        if batch_size < 1 or batch_size > self.per_rank:
            raise ValueError(
                f"batch of {batch_size} per process needs at least {batch_size * world_size} images, "
                f"the cache has {len(data)}"
            )
        self.data = data.to(device).contiguous()
        self.batch_size, self.flip, self.seed = batch_size, flip, seed
        self.rank, self.world_size = rank, world_size
        self.channels_last, self.dtype = channels_last, dtype
        self.epoch, self.position = 0, 0
        self._order: torch.Tensor | None = None
        self._flips: torch.Tensor | None = None

    @property
    def batches_per_epoch(self) -> int:
        return self.per_rank // self.batch_size  # the incomplete last batch is dropped

    def _draw_epoch(self) -> None:
        g = torch.Generator().manual_seed(self.seed + _EPOCH_STRIDE * self.epoch)
        perm = torch.randperm(len(self.data), generator=g)
        flips = torch.rand(len(self.data), generator=g) < 0.5
        keep = perm[: self.per_rank * self.world_size]
        self._order = keep[self.rank :: self.world_size].to(self.data.device)
        self._flips = flips[keep][self.rank :: self.world_size].to(self.data.device)

    def next_uint8(self) -> torch.Tensor:
        """The next batch as uint8 (B, H, W, 3), flips applied."""
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
            self._order = None
        if self._order is None:
            self._draw_epoch()
        sl = slice(self.position * self.batch_size, (self.position + 1) * self.batch_size)
        batch = self.data.index_select(0, self._order[sl])
        self.position += 1
        if self.flip:
            f = self._flips[sl]
            batch = torch.where(f[:, None, None, None], batch.flip(2), batch)  # W is dim 2 in NHWC
        return batch

    def __next__(self) -> torch.Tensor:
        """The next batch as float (B, 3, H, W) in [-1, 1]."""
        return to_model_range(self.next_uint8(), self.dtype, self.channels_last)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self.seed = int(state["epoch"]), int(state["position"]), int(state["seed"])
        self._order = None
