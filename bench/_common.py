"""What several benchmark scripts share: where the shared photos are, and their 64x64 cache."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared/data"
PHOTOS = SHARED / "celeba-10k"


def build_cache(photos: Path, cache: Path) -> Path:
    """The 64×64 uint8 cache of ``photos`` (made once with ``facegan prepare``'s library call)."""
    if cache.is_file():
        return cache
    from facegan.data import prepare

    cache.parent.mkdir(parents=True, exist_ok=True)
    prepare(photos, cache, progress=False, log=lambda *a, **k: None)
    return cache


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


def matmul_peak(dtype, n: int = 2048, reps: int = 6) -> float:
    """FLOP/s of an n×n matrix product in ``dtype`` with the current threads: the CPU's practical
    peak for the arithmetic that convolutions turn into (bf16 is emulated, and slow, without
    AVX512-BF16/AMX)."""
    import time

    import torch

    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(2):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)
