"""One training step of a GAN: ``n_dis`` discriminator updates, then one generator update.

The objective lives here and only here (as ``Loss.accumulate_gradients`` does in StyleGAN2-ADA):
the GAN method (:mod:`facegan.train.methods.gan`) hands over where real batches and noise come
from and gets back a dict of named scalars, which the monitor, ``stats.jsonl``, the curves and
TensorBoard log by name.

Seams, each off by default (the brief's DCGAN step is then exactly the PyTorch tutorial's):

- ``augment``: applied to every image D sees, real and fake, in both updates; differentiable,
  so G learns through it (:mod:`facegan.train.augment`; its ``p`` may adapt to ``r_t``).
- ``r1_gamma``: R1 penalty ``gamma/2 * E|grad_x D(x)|^2`` on real images (Mescheder et al. 2018),
  lazily every ``r1_every`` D steps and then scaled by ``r1_every`` (StyleGAN2's lazy
  regularisation keeps the same strength on average).
- ``n_dis``: D steps per G step, each on a fresh real batch; G's step reuses the fakes of the
  last D step (one G forward fewer — the same fakes, as the tutorial does for ``n_dis = 1``).
- ``joint_d``: real and fake in one D forward (one kernel launch per layer instead of two);
  only for a D without BatchNorm, whose statistics would mix the two batches.
- separate Adam betas per network come from the optimisers the GAN method builds.
- ``precision``: fp32, bf16 autocast, or fp16 autocast with dynamic loss scaling (one
  ``GradScaler`` per network: fp16's 5 exponent bits flush small gradients to zero unless the loss
  is scaled up first; bf16 has fp32's range and needs none).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from facegan.train.losses import GanLoss
from facegan.train.augment import Augment


@dataclass
class Nets:
    """The networks as one step sees them.

    ``G_train``/``D_train`` are the training views (DDP-wrapped, maybe compiled); ``D_for_g`` is
    D without the DDP wrapper, for G's update, which needs D's output but not its gradients;
    ``D`` is the plain module whose ``requires_grad`` is switched off meanwhile.
    """

    G_train: nn.Module
    D_train: nn.Module
    D_for_g: nn.Module
    D: nn.Module


class GanStep:
    """``step(next_real, next_noise) -> {"loss_d": …, "loss_g": …, "d_real": …, "d_fake": …}``.

    Args:
        nets: the networks (:class:`Nets`).
        opt_g, opt_d: their optimisers.
        loss: the objective (:data:`facegan.train.losses.LOSSES`).
        n_dis: D updates per G update.
        joint_d: one D forward for real and fake.
        augment: the augmentation in front of D (None: none).
        r1_gamma, r1_every: the R1 penalty's weight (0: off) and laziness.
        autocast: device type to run autocast on (None: fp32 whatever ``precision`` says).
        precision: ``fp32``, ``bf16`` or ``fp16`` (fp16 adds loss scaling).
        freeze_d: switch D's ``requires_grad`` off for G's update (saves D's weight gradients);
            off under ``torch.compile``, where the toggle forces recompiles (and once broke the
            compiled backward) — D's stray gradients are then cleared before its next update.
    """

    def __init__(self, nets: Nets, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, loss: GanLoss, *,
                 n_dis: int = 1, joint_d: bool = False, augment: Augment | None = None, r1_gamma: float = 0.0,
                 r1_every: int = 1, autocast: str | None = None, precision: str = "bf16",
                 freeze_d: bool = True):
        self.nets, self.opt_g, self.opt_d, self.loss = nets, opt_g, opt_d, loss
        self.n_dis, self.joint_d, self.augment = n_dis, joint_d, augment
        self.r1_gamma, self.r1_every = r1_gamma, r1_every
        self.freeze_d = freeze_d
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision) if autocast else None
        self.autocast = autocast if self.dtype is not None else None
        fp16 = self.dtype is torch.float16
        self.scaler_d = torch.amp.GradScaler(autocast) if fp16 else None
        self.scaler_g = torch.amp.GradScaler(autocast) if fp16 else None
        self.d_steps = 0  # D updates so far (for lazy R1); restored on resume from the step count

    def _ctx(self):
        return torch.autocast(self.autocast, dtype=self.dtype) if self.autocast else contextlib.nullcontext()

    @staticmethod
    def _update(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
        """backward + step, through the loss scaler under fp16 (it skips a step whose gradients
        overflowed and lowers the scale)."""
        if scaler is None:
            loss.backward()
            opt.step()
            return
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def amp_state(self) -> dict[str, dict] | None:
        """The loss scalers' state for a checkpoint (None unless fp16)."""
        if self.scaler_d is None:
            return None
        return {"scaler_d": self.scaler_d.state_dict(), "scaler_g": self.scaler_g.state_dict()}

    def load_amp_state(self, state: dict[str, dict] | None) -> None:
        """Restore :meth:`amp_state` (a checkpoint without it keeps fresh scalers)."""
        if state and self.scaler_d is not None:
            self.scaler_d.load_state_dict(state["scaler_d"])
            self.scaler_g.load_state_dict(state["scaler_g"])

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.augment is None else self.augment(x)

    def _d_logits(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        real, fake = self._aug(real), self._aug(fake)
        if self.joint_d:
            logits = self.nets.D_train(torch.cat([real, fake]))  # (2B,)
            return logits[: len(real)], logits[len(real):]
        return self.nets.D_train(real), self.nets.D_train(fake)  # (B,), (B,)

    def d_step(self, real: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One D update on ``real`` (B, 3, H, W) and fakes from ``z``; returns the fakes (for G)."""
        r1_now = self.r1_gamma > 0 and self.d_steps % self.r1_every == 0
        if r1_now:
            real = real.detach().requires_grad_(True)  # the penalty is a gradient w.r.t. the input
        with self._ctx():
            fake = self.nets.G_train(z)  # (B, 3, H, W)
            real_logits, fake_logits = self._d_logits(real, fake.detach())
            loss_d = self.loss.d(real_logits, fake_logits)
        scalars = {"loss_d": loss_d.detach(), "d_real": torch.sigmoid(real_logits.detach().float()).mean(),
                   "d_fake": torch.sigmoid(fake_logits.detach().float()).mean()}
        total = loss_d
        if r1_now:
            # Under fp16 the input gradient is taken of the scaled sum (small gradients would flush
            # to zero in fp16 otherwise) and unscaled in fp32; an overflow makes the loss inf and
            # the scaler then skips this step.
            if self.scaler_d is None:
                (grad,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)  # (B, 3, H, W)
            else:
                scale = self.scaler_d.get_scale()
                (grad,) = torch.autograd.grad(real_logits.float().sum() * scale, real, create_graph=True)
                grad = grad.float() / scale
            r1 = grad.float().square().sum(dim=(1, 2, 3)).mean()
            total = loss_d + (0.5 * self.r1_gamma * self.r1_every) * r1
            scalars["r1"] = r1.detach()
        self.opt_d.zero_grad(set_to_none=True)
        self._update(total, self.opt_d, self.scaler_d)
        self.d_steps += 1
        if self.augment is not None:
            self.augment.observe(real_logits, len(real))
        return fake, scalars

    def g_step(self, fake: torch.Tensor) -> torch.Tensor:
        """One G update through D on ``fake`` (still attached to G's graph)."""
        if self.freeze_d:
            self.nets.D.requires_grad_(False)  # G's update: no gradients for D's weights
        try:
            with self._ctx():
                loss_g = self.loss.g(self.nets.D_for_g(self._aug(fake)))
            self.opt_g.zero_grad(set_to_none=True)
            self._update(loss_g, self.opt_g, self.scaler_g)
        finally:
            if self.freeze_d:
                self.nets.D.requires_grad_(True)
        return loss_g.detach()

    def __call__(self, next_real: Callable[[], torch.Tensor], next_noise: Callable[[], torch.Tensor]
                 ) -> dict[str, torch.Tensor | float]:
        """``n_dis`` D updates (each on ``next_real()`` and fakes of ``next_noise()``), then one G
        update; the named scalars of this step (D's averaged over its updates)."""
        sums: dict[str, torch.Tensor] = {}
        for _ in range(self.n_dis):
            real = next_real()
            fake, scalars = self.d_step(real, next_noise())
            for k, v in scalars.items():
                sums[k] = sums[k] + v if k in sums else v
        out: dict[str, torch.Tensor | float] = {k: v / self.n_dis if k != "r1" else v for k, v in sums.items()}
        out["loss_g"] = self.g_step(fake)
        if self.augment is not None and self.augment.policy:
            out["augment_p"] = self.augment.p
            if self.augment.r_t is not None:
                out["r_t"] = self.augment.r_t
        return out
