"""``TrainConfig``: every knob of a training run, in one typed, validated, documented place.

``facegan train`` generates its options from these fields (their docstrings are the help), each
checkpoint carries the config as a dict, and ``config.json`` in the run folder is the same dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from facegan.errors import FaceganError

#: Fields that shape the models or the data stream: a resumed run may not change them.
FROZEN_ON_RESUME: tuple[str, ...] = (
    "arch", "resolution", "z_dim", "ngf", "ndf", "g_norm", "d_norm", "d_dropout", "batch", "seed", "ema",
)


@dataclass
class TrainConfig:
    data: str = ""
    """the uint8 image cache: a .npy of shape (N, H, W, 3) written by 'facegan prepare'"""
    out: str = ""
    """the run folder: config.json, stats.jsonl, last.pt, best.pt, grids and curves go here"""
    kimg: float | None = None
    """length of training in thousands of real images shown to D (at least one of --kimg, --minutes)"""
    minutes: float | None = None
    """length of training in minutes of wall-clock time (counted across resumes)"""

    arch: str = "dcgan"
    """registered name of the generator and discriminator (see facegan.models.registry)"""
    resolution: int = 64
    """image size: must match the cache's H and W (a power of two >= 8)"""
    z_dim: int = 100
    """size of the generator's latent vector z"""
    ngf: int = 64
    """generator width (channels of its last hidden layer; doubled per layer towards z)"""
    ndf: int = 64
    """discriminator width (channels of its first layer; doubled per layer)"""
    g_norm: Literal["batch", "instance", "group", "layer", "none"] = "batch"
    """normalization in the generator's hidden layers"""
    d_norm: Literal["batch", "instance", "group", "layer", "none"] = "batch"
    """normalization in the discriminator's hidden layers (never on its first layer)"""
    d_dropout: float = 0.0
    """dropout probability after each hidden layer of the discriminator"""

    loss: Literal["bce", "hinge", "lsgan"] = "bce"
    """GAN loss: bce is the brief's (non-saturating for G)"""
    batch: int = 128
    """images per step, summed over all processes under DDP"""
    lr_g: float = 2e-4
    """Adam learning rate of the generator"""
    lr_d: float = 2e-4
    """Adam learning rate of the discriminator"""
    beta1: float = 0.5
    """Adam beta1 (the DCGAN paper: 0.5)"""
    beta2: float = 0.999
    """Adam beta2"""
    flip: bool = True
    """mirror training images left-right at random (faces are nearly symmetric)"""
    seed: int = 0
    """seed of the weights, the data order, the noise and the fixed sample grid"""

    ema: bool = True
    """keep an exponential moving average of G's weights, used for grids, FID and sampling"""
    ema_kimg: float = 10.0
    """EMA half-life in thousands of images"""
    ema_rampup: float | None = 0.05
    """early on, cap the half-life at this fraction of the images seen so far (None: no ramp-up)"""
    ema_bn: Literal["recalibrate", "copy"] = "recalibrate"
    """BatchNorm statistics of the EMA generator: re-estimated by forward passes in train mode, or copied from G"""
    bn_batches: int = 16
    """batches of fresh noise used to re-estimate the EMA generator's BatchNorm statistics"""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """where to train: auto picks cuda when available (under torchrun: the local rank's GPU)"""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """bf16 autocast or fp32; auto: bf16 on CPUs with AVX512-BF16/AMX (2-4x faster there), fp32/TF32 on GPUs (faster for the DCGAN on an H200)"""
    channels_last: bool = True
    """NHWC memory format for the convolutions (measured 1.3-1.9x faster on the CPU here; left to the compiler with --compile)"""
    matmul_convs: Literal["auto", "on", "off"] = "auto"
    """run convolutions onto (or transposed ones from) maps of 4x4 pixels or fewer as one matrix product (facegan.models.matmul_conv); auto: on CPUs, where oneDNN's direct kernels were 2-3x slower for them (DCGAN steps 1.4x faster in bf16), off on GPUs"""
    threads: int | None = None
    """CPU threads for torch (None: one per core). On a CPU shared with other jobs, 1 can be far faster: bf16 kernels on 2 threads slowed 20x when another process took a core"""
    compile: bool = False
    """torch.compile the generator and discriminator (slow start; pays on GPUs for long runs)"""

    tick_kimg: float = 4.0
    """log one line (progress, stats.jsonl, TensorBoard) every this many thousand images"""
    grid_kimg: float = 40.0
    """save a fixed-noise sample grid every this many thousand images (and at the end)"""
    ckpt_minutes: float = 5.0
    """write last.pt at least this often (minutes), and always at the end and on Ctrl-C/SIGTERM"""
    ref: str | None = None
    """reference FID statistics (.npz with mu, sigma): score FID@fid_n while training and keep best.pt"""
    fid_kimg: float = 50.0
    """score FID every this many thousand images (with --ref) and at the end"""
    fid_n: int = 1000
    """samples per FID score (the brief's protocol: 1,000)"""
    fid_share: float = 0.1
    """at most this share of the run's time goes to FID while training: when a score takes longer (1,000 samples take ~45 s on a 2-core CPU), the next one waits for more images, a multiple of --fid-kimg (0: every --fid-kimg regardless; under torchrun always every --fid-kimg)"""
    progress: bool = True
    """show a progress bar (on a terminal; otherwise one printed line per tick)"""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.data:
            problems.append("--data (the .npy cache from 'facegan prepare') is required")
        if not self.out:
            problems.append("--out (the run folder) is required")
        if self.kimg is None and self.minutes is None:
            problems.append("give the length of training: --kimg N (thousands of images) or --minutes M")
        for name in ("kimg", "minutes"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                problems.append(f"--{name} must be positive, got {v}")
        r = self.resolution
        if r < 8 or r & (r - 1):
            problems.append(f"--resolution must be a power of two >= 8, got {r}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"--threads must be at least 1 or None, got {self.threads}")
        for name in ("z_dim", "ngf", "ndf", "batch", "bn_batches", "fid_n"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d", "tick_kimg", "grid_kimg", "ckpt_minutes", "fid_kimg", "ema_kimg"):
            if not getattr(self, name) > 0:
                problems.append(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in ("beta1", "beta2", "d_dropout", "fid_share"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}")
        if self.ema_rampup is not None and self.ema_rampup <= 0:
            problems.append(f"--ema-rampup must be positive or None, got {self.ema_rampup}")
        if problems:
            raise FaceganError("training config: " + "; ".join(problems))

    def model_kwargs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Keyword arguments for ``create_generator`` and ``create_discriminator``."""
        g = {"z_dim": self.z_dim, "ngf": self.ngf, "resolution": self.resolution, "norm": self.g_norm}
        d = {"ndf": self.ndf, "resolution": self.resolution, "norm": self.d_norm, "dropout": self.d_dropout}
        return g, d
