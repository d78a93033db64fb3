"""``TrainConfig``: every knob of a training run, in one typed, validated, documented place.

The networks' own options are not here: each registered generator and discriminator carries its
config dataclass (:mod:`facegan.models.registry`), held in ``TrainConfig.g`` and ``TrainConfig.d``
and offered on the command line as ``--g.NAME`` / ``--d.NAME``; likewise a training method's
own options (:mod:`facegan.train.methods`) are ``TrainConfig.method_options``, ``--m.NAME``. The
GAN, the default method, reads the fields below (so every config written so far still loads). ``facegan train`` generates the
other options from the fields below (their docstrings are the help); each checkpoint carries the
resolved config as a dict, and ``config.json`` in the run folder is the same dict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from facegan.errors import FaceganError

#: Training fields that shape the data stream or what is averaged: a resumed run may not change
#: them. The models' configs (``arch``, ``g``, ``d``) are compared whole, so a new model's
#: options need no entry here.
FROZEN_ON_RESUME: tuple[str, ...] = ("method", "method_options", "arch", "resolution", "g", "d", "batch", "n_dis",
                                     "seed", "ema")
#: Fields holding a nested config: options given for them are merged field by field onto a
#: preset's or a resumed run's (``--g.ngf 8`` alone keeps the run's other generator options).
NESTED: tuple[str, ...] = ("g", "d", "method_options")

#: The format of configs written before the models had their own configs (facegan-train-1).
_V1_MODEL_FIELDS = ("z_dim", "ngf", "ndf", "g_norm", "d_norm", "d_dropout")


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

    preset: str | None = None
    """a named recipe, one of {facegan.train.presets.PRESETS} (dcgan: the brief's; each listed below); options given beside it win"""
    method: str = "gan"
    """registered name of the training method (facegan.train.methods): gan (a generator against a discriminator, every option below) or another registered one; its own options are --m.NAME"""
    method_options: Any = None
    """the method's own options (a dict or its options dataclass; None: its defaults)"""
    arch: str = "dcgan"
    """registered name of the generator and discriminator (facegan.models.registry); their options are --g.NAME and --d.NAME"""
    resolution: int = 64
    """image size: must match the cache's H and W (a power of two >= 8); given to both networks"""
    g: Any = None
    """the generator's config (a dict or its config dataclass; None: its defaults)"""
    d: Any = None
    """the discriminator's config (a dict or its config dataclass; None: its defaults)"""

    loss: str = "bce"
    """GAN loss, one of {facegan.train.losses.LOSSES} (bce: the brief's, non-saturating for G)"""
    batch: int = 128
    """images per step, summed over all processes under DDP"""
    n_dis: int = 1
    """discriminator steps per generator step, each on a fresh real batch"""
    joint_d: bool = False
    """score real and fake images in one discriminator forward (faster; only for a D without BatchNorm, which would mix the two batches' statistics)"""
    lr_g: float = 2e-4
    """Adam learning rate of the generator"""
    lr_d: float = 2e-4
    """Adam learning rate of the discriminator"""
    lr_decay_start: float | None = None
    """decay both learning rates linearly to 0 from this fraction of the run's length (kimg or minutes) to its end (not given: constant)"""
    beta1_g: float = 0.5
    """Adam beta1 of the generator (the DCGAN paper: 0.5; SN-GAN: 0)"""
    beta2_g: float = 0.999
    """Adam beta2 of the generator"""
    beta1_d: float = 0.5
    """Adam beta1 of the discriminator"""
    beta2_d: float = 0.999
    """Adam beta2 of the discriminator"""
    r1_gamma: float | None = 0.0
    """R1 gradient penalty weight gamma on real images: gamma/2 * E|grad_x D(x)|^2 (0: off; none: the limited-data paper's heuristic 0.0002 * resolution^2 / batch, resolved and recorded as the number)"""
    r1_every: int = 1
    """lazy R1: apply the penalty every this many D steps, scaled up by the same factor"""
    augment: str = "none"
    """DiffAugment policy applied to every image D sees, real and fake: comma-separated of {facegan.train.augment.FAMILIES}, or none"""
    augment_p: float = 0.0
    """probability that each augmentation is applied to an image (with --ada-target: the starting value)"""
    ada_target: float | None = None
    """adaptive augmentation: move the probability so that D's overfitting signal r_t = E[sign D(real)] approaches this target (e.g. 0.6); not given: a fixed --augment-p"""
    ada_kimg: float = 100.0
    """adaptive augmentation speed: the probability can move from 0 to 1 in this many thousand images"""
    ada_interval: int = 4
    """adaptive augmentation: adjust the probability every this many D steps"""
    flip: bool = True
    """mirror training images left-right at random (faces are nearly symmetric)"""
    seed: int = 0
    """seed of the weights, the data order, the noise and the fixed sample grid"""

    ema: bool = True
    """keep an exponential moving average of G's weights, used for grids, FID and sampling"""
    ema_kimg: float = 10.0
    """EMA half-life in thousands of images"""
    ema_rampup: float | None = 0.05
    """early on, cap the half-life at this fraction of the images seen so far ('none': no ramp-up)"""
    ema_bn: Literal["recalibrate", "copy"] = "recalibrate"
    """BatchNorm statistics of the EMA generator: re-estimated by forward passes in train mode, or copied from G"""
    bn_batches: int = 16
    """batches of fresh noise used to re-estimate the EMA generator's BatchNorm statistics"""

    device: str = "auto"
    """where to train: auto, cpu, cuda or cuda:N; auto picks cuda when available (under torchrun: the local rank's GPU)"""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """fp32 (TF32 on GPUs), bf16 autocast, or fp16 autocast with loss scaling (GPUs); auto: measured among what the hardware runs natively (bf16 on AVX512-BF16/AMX CPUs and Ampere+ GPUs, fp16 on older tensor-core GPUs such as a T4, fp32 everywhere)"""
    channels_last: bool = True
    """NHWC memory format for the convolutions (measured 1.3-1.9x faster on the CPU here; left to the compiler with --compile)"""
    matmul_convs: Literal["auto", "on", "off"] = "auto"
    """run convolutions onto (or transposed ones from) maps of 4x4 pixels or fewer as one matrix product (facegan.models.matmul_conv); auto: on CPUs, where oneDNN's direct kernels were 2-3x slower for them (DCGAN steps 1.4x faster in bf16), off on GPUs"""
    threads: int | None = None
    """CPU threads for torch (not given: measured by the speed check, or one per core). On a CPU shared with other jobs, 1 can be far faster: bf16 kernels on 2 threads slowed 20x when another process took a core"""
    compile: bool = False
    """torch.compile the generator and discriminator (slow start; pays on GPUs for long runs; not with --r1-gamma)"""

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
        if self.r1_gamma is None and self.batch >= 1:  # resolved first: the checks below see the number
            self.r1_gamma = r1_heuristic(self.resolution, self.batch)
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
        from facegan.devices import device_problem

        if device_problem(self.device):
            problems.append(device_problem(self.device))
        if self.threads is not None and self.threads < 1:
            problems.append(f"--threads must be at least 1 or None, got {self.threads}")
        for name in ("batch", "n_dis", "r1_every", "ada_interval", "bn_batches", "fid_n"):
            if getattr(self, name) < 1:
                problems.append(f"--{_opt(name)} must be at least 1, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d", "tick_kimg", "grid_kimg", "ckpt_minutes", "fid_kimg", "ema_kimg", "ada_kimg"):
            if not getattr(self, name) > 0:
                problems.append(f"--{_opt(name)} must be positive, got {getattr(self, name)}")
        for name in ("beta1_g", "beta2_g", "beta1_d", "beta2_d", "fid_share"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"--{_opt(name)} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.augment_p <= 1.0:
            problems.append(f"--augment-p must be in [0, 1], got {self.augment_p}")
        if self.ada_target is not None and not -1.0 < self.ada_target < 1.0:
            problems.append(f"--ada-target must be in (-1, 1), got {self.ada_target}")
        if self.lr_decay_start is not None and not 0.0 <= self.lr_decay_start < 1.0:
            problems.append(f"--lr-decay-start must be in [0, 1) or None, got {self.lr_decay_start}")
        if self.r1_gamma is None or self.r1_gamma < 0:
            problems.append(f"--r1-gamma must be >= 0, got {self.r1_gamma}")
        if self.r1_gamma > 0 and self.compile:
            problems.append("--r1-gamma needs a double backward, which torch.compile does not run: drop --compile")
        if self.ema_rampup is not None and self.ema_rampup <= 0:
            problems.append(f"--ema-rampup must be positive or None, got {self.ema_rampup}")
        from facegan.train.losses import LOSSES
        from facegan.train.augment import parse_policy

        if self.loss not in LOSSES:
            problems.append(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        try:
            parse_policy(self.augment)
        except FaceganError as exc:
            problems.append(str(exc))
        if problems:
            raise FaceganError("training config: " + "; ".join(problems))
        # The method's options and the networks' configs: resolved against their registries.
        from facegan.models.registry import model_config
        from facegan.train.methods import method_options

        self.method_options = method_options(self.method, self.method_options)

        self.g = model_config("generator", self.arch, self.g, resolution=self.resolution)
        self.d = model_config("discriminator", self.arch, self.d, resolution=self.resolution)

    @property
    def z_dim(self) -> int:
        """The generator's latent size."""
        return int(self.g.z_dim)


def r1_heuristic(resolution: int, batch: int) -> float:
    """The R1 weight the limited-data paper (Karras et al. 2020) starts from: 0.0002 · res² / batch
    (0.0256 at 64 px and batch 32)."""
    return 0.0002 * resolution**2 / batch


def _opt(name: str) -> str:
    return name.replace("_", "-")


def upgrade_config(data: dict[str, Any]) -> dict[str, Any]:
    """A config dict of an older format in today's shape (facegan-train-1 kept the DCGAN's
    options among the training fields and one pair of Adam betas for both networks)."""
    data = dict(data)
    if "g" not in data and any(k in data for k in _V1_MODEL_FIELDS):
        res = data.get("resolution", 64)
        data["g"] = {"z_dim": data.pop("z_dim", 100), "ngf": data.pop("ngf", 64), "norm": data.pop("g_norm", "batch"),
                     "resolution": res}
        data["d"] = {"ndf": data.pop("ndf", 64), "norm": data.pop("d_norm", "batch"),
                     "dropout": data.pop("d_dropout", 0.0), "resolution": res}
    for net in ("g", "d"):
        for k in ("beta1", "beta2"):
            if k in data and f"{k}_{net}" not in data:
                data[f"{k}_{net}"] = data[k]
    data.pop("beta1", None)
    data.pop("beta2", None)
    return data


def merge_given(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` on top of ``base`` (a preset's overrides, a resumed run's config), the nested
    configs (:data:`NESTED`) merged field by field: the one merge for presets and resumes."""
    out = {**base, **given}
    for key in NESTED:
        if isinstance(base.get(key), dict) or isinstance(given.get(key), dict):
            out[key] = {**(base.get(key) or {}), **(given.get(key) or {})}
    return out


def frozen_changes(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The :data:`FROZEN_ON_RESUME` fields whose values differ between a run's saved config dict
    and ``now`` (fields absent from ``now`` are not compared)."""
    saved = config_to_dict(config_from_dict({**saved, "data": saved.get("data") or "x", "out": "x", "kimg": 1}))
    return [k for k in FROZEN_ON_RESUME if k in now and saved.get(k) != now.get(k)]


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """A JSON-ready dict of ``cfg`` (the networks' configs nested as dicts)."""
    return dataclasses.asdict(cfg)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a config from :func:`config_to_dict` output (any format), ignoring unknown keys."""
    data = upgrade_config(data)
    names = {f.name for f in dataclasses.fields(TrainConfig) if f.init}
    return TrainConfig(**{k: v for k, v in data.items() if k in names})
