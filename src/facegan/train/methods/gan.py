"""The GAN as a training method: G and D from the model registry, two Adam optimisers, the
augmentation, one :class:`~facegan.train.step.GanStep` per step and the EMA of G.

Everything GAN-shaped that the loop used to hold lives here: the noise (``z_dim`` per image from
the method's own generator), ``batch * n_dis`` real images per step, the EMA update after each
step, the two learning rates under the decay schedule, the checkpoint keys (``G``, ``D``,
``G_ema``, ``opt_g``, ``opt_d``, ``augment``, ``amp`` — those of formats 1 and 2, so every
checkpoint written so far loads, samples the same bytes and resumes) and the sampler (the EMA,
its BatchNorm statistics re-estimated once per step it is asked at, or G).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from facegan.devices import accelerator, describe_precision, precision_by_capability
from facegan.errors import FaceganError
from facegan.train.losses import get_loss
from facegan.models.matmul_conv import matmul_convs_on, use_matmul_convs
from facegan.models.sampling import GeneratorSampler, has_batchnorm, recalibrate_batchnorm
import facegan.train.distributed as dist_util
from facegan.train.augment import Augment, parse_policy
from facegan.train.ema import ema_beta, make_ema, update_ema
from facegan.train.methods import register_method
from facegan.train.step import GanStep, Nets


def resolve_precision(requested: str, device: torch.device) -> str:
    """``--precision`` for ``device`` when no speed check chose it: what the hardware runs natively
    (:func:`facegan.devices.precision_by_capability`); an explicit value is kept."""
    return precision_by_capability(requested, accelerator(device))


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


class EmaSampler:
    """The generator used for grids, FID and sampling while training, as a
    :class:`~facegan.models.sampling.Sampler`: the EMA (its BatchNorm statistics re-estimated
    once per step it is asked at) or G itself."""

    #: Announce a re-estimation expected to take longer than this (seconds): the first time ...
    SAY_FIRST_S = 3.0
    #: ... and, once the user knows it happens, only the long ones.
    SAY_LATER_S = 20.0

    def __init__(self, method: "GanMethod"):
        self.method = method
        self.say: Callable[[str], None] | None = None
        self._ready_step = -1
        self._said = False

    def _after_batch(self, k: int, seconds: float) -> None:
        if k != 0 or self.say is None:
            return
        batches = self.method.cfg.bn_batches
        total = seconds * batches
        if total > (self.SAY_LATER_S if self._said else self.SAY_FIRST_S):
            self._said = True
            self.say(f"re-estimating the EMA generator's BatchNorm statistics ({batches} batches of "
                     f"128 noise vectors, about {total:.0f} s; --bn-batches sets how many) ...")

    def generator(self) -> nn.Module:
        """The generator as it should be sampled now (re-estimating the EMA's statistics if due)."""
        m, cfg = self.method, self.method.cfg
        if m.G_ema is None:
            return m.G
        if cfg.ema_bn == "recalibrate" and has_batchnorm(m.G_ema) and self._ready_step != m.steps:
            self._ready_step = -1  # an abandoned re-estimation leaves statistics to redo
            recalibrate_batchnorm(m.G_ema, batches=cfg.bn_batches, batch_size=128, device=m.device,
                                  after_batch=self._after_batch)
            self._ready_step = m.steps
        return m.G_ema


@register_method("gan")
class GanMethod:
    """A generator and a discriminator trained against each other (the TrainConfig's GAN fields:
    ``arch``, ``g``, ``d``, ``loss``, ``n_dis``, ``lr_*``, ``augment``, ``r1_*``, ``ema*``...)."""

    def __init__(self, cfg: Any, options: None, info: dist_util.DistInfo):
        from facegan.models.registry import build

        self.cfg, self.info = cfg, info
        self.device = device = info.device
        self.precision = resolve_precision(cfg.precision, device)
        # Under torch.compile, inductor picks conv layouts itself; handing it channels_last weights
        # broke G's first (1x1-input) layer's backward on torch 2.11 + CUDA, so leave them NCHW there.
        self.channels_last = cfg.channels_last and not cfg.compile
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.G = build("generator", cfg.arch, cfg.g).to(device, memory_format=memory_format)
        self.D = build("discriminator", cfg.arch, cfg.d).to(device, memory_format=memory_format)
        self.matmul = matmul_convs_on(cfg.matmul_convs, device)
        if self.matmul:  # same parameters and state_dict; only how the 4x4-map layers compute changes
            use_matmul_convs(self.G)
            use_matmul_convs(self.D)
        self.G_ema = make_ema(self.G) if cfg.ema else None
        fused = {"fused": True} if device.type == "cuda" else {}
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1_g, cfg.beta2_g), **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1_d, cfg.beta2_d), **fused)
        self.batch_per_rank = cfg.batch // info.world_size
        self.noise = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + 104729 * (info.rank + 1))
        policy = parse_policy(cfg.augment)
        self.augment = Augment(policy, cfg.augment_p, device, seed=cfg.seed * 31 + 17 + info.rank,
                               target=cfg.ada_target, speed_img=cfg.ada_kimg * 1000,
                               interval=cfg.ada_interval) if policy else None
        # Training views: DDP-wrapped (gradients averaged over ranks) and optionally compiled.
        G_train, D_train = dist_util.wrap_ddp(self.G, info), dist_util.wrap_ddp(self.D, info)
        D_for_g = self.D  # G's update needs D's output but not D's gradients: no DDP sync for it
        if cfg.compile:
            G_train, D_train, D_for_g = torch.compile(G_train), torch.compile(D_train), torch.compile(self.D)
        if cfg.joint_d and has_batchnorm(self.D):
            raise FaceganError(f"--joint-d: the {cfg.arch} discriminator has BatchNorm, which would mix the "
                               "statistics of real and fake batches; drop --joint-d or use --d.norm "
                               "none/layer/instance/group")
        self.gan_step = GanStep(Nets(G_train, D_train, D_for_g, self.D), self.opt_g, self.opt_d, get_loss(cfg.loss),
                                n_dis=cfg.n_dis, joint_d=cfg.joint_d, augment=self.augment, r1_gamma=cfg.r1_gamma,
                                r1_every=cfg.r1_every, autocast=device.type, precision=self.precision,
                                freeze_d=not cfg.compile)
        self.images_per_step = cfg.batch * cfg.n_dis
        self.sync_module = self.G
        self.nimg, self.steps = 0, 0
        self._sampling = EmaSampler(self)

    # --- training ---------------------------------------------------------------------------
    def next_noise(self) -> torch.Tensor:
        """(B, z_dim) latents for one batch of this rank, from the method's own generator."""
        return torch.randn(self.batch_per_rank, self.cfg.z_dim, device=self.device, generator=self.noise)

    def step(self, next_real: Callable[[], torch.Tensor]) -> dict[str, torch.Tensor | float]:
        """``n_dis`` D updates and one G update, then the EMA of G follows."""
        scalars = self.gan_step(next_real, self.next_noise)
        self.nimg += self.images_per_step
        self.steps += 1
        if self.G_ema is not None:
            cfg = self.cfg
            update_ema(self.G_ema, self.G, ema_beta(cfg.batch, self.nimg, cfg.ema_kimg, cfg.ema_rampup))
        return scalars

    def set_lr_scale(self, scale: float) -> None:
        for opt, base in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * scale

    # --- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self._sampling.generator()  # the EMA's statistics must match the weights saved with them
        return {
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": None if self.G_ema is None else self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "augment": None if self.augment is None else self.augment.state_dict(),
            "amp": self.gan_step.amp_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.augment is not None and state.get("augment") is not None:
            self.augment.load_state_dict(state["augment"])
        self.nimg, self.steps = int(state["nimg"]), int(state["step"])
        self.gan_step.d_steps = self.steps * self.cfg.n_dis
        self.gan_step.load_amp_state(state.get("amp"))  # fp16's loss scales (absent before, and unless fp16)

    # --- pictures and words -----------------------------------------------------------------
    def sampler(self, say: Callable[[str], None] | None = None) -> GeneratorSampler:
        if say is not None:
            self._sampling.say = say
        s = GeneratorSampler(self._sampling.generator(), device=self.device)
        s.label = "EMA" if self.G_ema is not None else "G"
        return s

    def describe(self) -> str:
        cfg = self.cfg
        return (f"{cfg.arch} G {_count(self.G) / 1e6:.2f}M / D {_count(self.D) / 1e6:.2f}M params, "
                f"{describe_precision(self.precision, self.device)}{', channels_last' if self.channels_last else ''}"
                f"{', 4x4-map convs as matmuls' if self.matmul else ''}{', torch.compile' if cfg.compile else ''}")

    # --- a checkpoint, without training -----------------------------------------------------
    @staticmethod
    def check_checkpoint(state: dict[str, Any], path: Path) -> None:
        from facegan.train.checkpoint_check import check_gan_state

        check_gan_state(state, path)

    @staticmethod
    def load_sampler(state: dict[str, Any], which: str, device: Any, batch_size: int) -> GeneratorSampler:
        return GeneratorSampler(load_generator(state, which, device), device=device, batch_size=batch_size)


def load_generator(state: dict[str, Any], which: str = "ema", device: torch.device | str = "cpu") -> nn.Module:
    """The generator of a loaded GAN checkpoint (:func:`facegan.train.checkpoint.load`), in eval
    mode on ``device``: ``which="ema"`` the moving average (with the BatchNorm statistics
    re-estimated for it when the checkpoint was written), ``"g"`` the raw generator."""
    from facegan.train.checkpoint import build_generator, check_finite

    key = {"ema": "G_ema", "g": "G"}.get(which)
    if key is None:
        raise FaceganError(f"--which must be 'ema' or 'g', not {which!r}")
    if state.get(key) is None:
        if state["format"] == "facegan-generator-1":
            other = "ema" if which == "g" else "g"
            raise FaceganError(f"{state['path']}: an exported file holding only one generator; use --which {other}")
        raise FaceganError(f"{state['path']}: has no EMA generator (trained with --no-ema); use --which g")
    check_finite(state[key], state["path"])  # NaN weights would sample blank images without a word
    generator = build_generator(state["config"])  # only G: sampling never builds D (shapes checked by load)
    generator.load_state_dict(state[key])
    return generator.to(device).eval()
