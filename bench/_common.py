"""What several benchmark scripts share: where the shared photos are, and their 64x64 cache."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared/data"
PHOTOS = SHARED / "celeba-10k"
#: Where the scripts keep the 64x64 cache of PHOTOS between runs.
CACHE = Path(tempfile.gettempdir()) / "facegan-bench" / "celeba10k-64.npy"


def add_data_arguments(ap: argparse.ArgumentParser, photos: bool = True) -> None:
    """``--photos`` (the shared photos) and ``--cache`` (their 64x64 cache), as every script takes them."""
    if photos:
        ap.add_argument("--photos", type=Path, default=PHOTOS, help=f"the photos (default {PHOTOS})")
    ap.add_argument("--cache", type=Path, default=CACHE, help=f"their 64x64 cache, made once (default {CACHE})")


def build_cache(photos: Path, cache: Path) -> Path:
    """The 64×64 uint8 cache of ``photos`` (made once with ``facegan prepare``'s library call)."""
    if cache.is_file():
        return cache
    from facegan.data import prepare

    cache.parent.mkdir(parents=True, exist_ok=True)
    prepare(photos, cache, progress=False, log=lambda *a, **k: None)
    return cache


def snapshot_files(out: Path, kind: str = "curve") -> list[tuple[float, Path]]:
    """A run folder's kept sample snapshots ``KIND-NIMG.npy`` as (kimg, path), in order."""
    return [(int(f.stem.split("-")[1]) / 1000, f) for f in sorted(out.glob(f"{kind}-*.npy"))]


#: Instruction sets that decide which kernels PyTorch, oneDNN and OpenBLAS run (x86 /proc/cpuinfo names).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def machine_report() -> str:
    """One line naming what a figure was measured on: the CPU, the instruction sets it has and
    lacks, the CPUs this process may use, torch and its kernel level, threads."""
    import torch

    from facegan.devices import cpu_flags, cpu_name, usable_cpus

    flags = cpu_flags()
    have = [f for f in ISA_FLAGS if f in flags]
    lack = [f for f in ISA_FLAGS if f not in flags]
    return (f"{cpu_name()}; ISA {'+'.join(have) or 'none of ' + ','.join(ISA_FLAGS)}"
            f"{' (no ' + ', '.join(lack) + ')' if lack else ''}; {usable_cpus()} usable CPUs; torch {torch.__version__} "
            f"(ATen {torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} threads")


def matmul_peak(dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of an n×n matrix product in ``dtype`` with the current threads: the CPU's practical
    peak for the arithmetic that convolutions turn into. Without AVX512-BF16/AMX, PyTorch emulates
    bf16 at a small fraction of fp32's speed, so the size grows from 256 only while one product takes
    under 50 ms (up to ``n``), and products repeat for about ``seconds``."""
    import time

    import torch

    size = 256
    while True:  # grow from a small product: an emulated 2048x2048 bf16 product takes ~1 min
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        t = time.perf_counter()
        a @ b  # warm-up, and a first timing
        once = time.perf_counter() - t
        if once > 0.05 or size >= n:
            break
        size *= 2
    n = size
    reps = max(2, int(seconds / max(once, 1e-4)))
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)
