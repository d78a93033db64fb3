"""Presets: named tables of overrides on top of :class:`~facegan.train.config.TrainConfig`'s
defaults, resolved before validation (so a preset is checked like any other config) and saved
in ``config.json`` and every checkpoint as the resolved values, with the preset's name.

Options given on the command line win over the preset's; the nested configs (the networks'
``g``/``d``, the method's ``method_options``) are merged field by field
(:func:`facegan.train.config.merge_given`, the same merge a resume uses).

What each measured, and where, is in ``bench/RESULTS.md`` ("quality"); the README's table
"hardware x time -> FID@1k" summarises it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facegan.errors import FaceganError


@dataclass(frozen=True)
class Preset:
    """One named recipe."""

    summary: str
    """one line for --help and the README"""
    overrides: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields (``g``/``d`` as dicts of the networks' fields)"""


PRESETS: dict[str, Preset] = {
    "dcgan": Preset("the brief's recipe exactly: DCGAN, BCE, batch 128, Adam 2e-4 / (0.5, 0.999)"),
    "cpu": Preset(
        "for 20-60 CPU minutes: a narrower DCGAN (32/32: ~2.7x the images per second) with batch 16 (8x the "
        "steps per image), the learning rate decayed to 0 over the second half, an EMA whose half-life is a fifth "
        "of the images seen (up to 100 kimg), DiffAugment that switches itself on once D starts to memorise the "
        "photos (adaptive, target r_t 0.9: from ~200 kimg in the measured runs)",
        {"arch": "dcgan", "g": {"ngf": 32}, "d": {"ndf": 32}, "batch": 16, "lr_decay_start": 0.5,
         "ema_kimg": 100.0, "ema_rampup": 0.2, "augment": "translation,color,cutout", "ada_target": 0.9},
    ),
    "gpu": Preset(
        "for one GPU: ResNet SN-GAN (width 32), hinge loss, TTUR 1e-4/4e-4 with Adam betas (0, 0.999), batch 256, "
        "real and fake in one D forward, lr decay over the second half, EMA half-life up to 500 kimg, "
        "adaptive DiffAugment, reduced precision where the GPU runs it natively (measured: bf16 on Ampere and later, "
        "fp16 with loss scaling on a T4)",
        {"arch": "resnet", "g": {"ch": 32}, "d": {"ch": 32}, "loss": "hinge", "batch": 256, "lr_g": 1e-4,
         "lr_d": 4e-4, "beta1_g": 0.0, "beta2_g": 0.999, "beta1_d": 0.0, "beta2_d": 0.999, "n_dis": 1,
         "joint_d": True, "lr_decay_start": 0.5, "ema_kimg": 500.0, "ema_rampup": 0.05,
         "augment": "translation,color,cutout", "ada_target": 0.6, "ada_kimg": 100.0,
         "tick_kimg": 50.0, "grid_kimg": 500.0, "fid_kimg": 1000.0},
    ),
    "stylegan2": Preset(
        "for one GPU overnight on full CelebA: StyleGAN2 at the limited-data paper's 64-px width (512 channels "
        "down to 32 px, 256 at 64 px; ~190 GFLOP per image-step), non-saturating logistic loss, lazy R1 every 16 "
        "D steps with gamma 0.0002*res^2/batch (0.0256), batch 32, Adam 2.5e-3 / (0, 0.99) for both, EMA "
        "half-life 10 kimg with ramp-up, style mixing 0.9, adaptive DiffAugment (target r_t 0.6: stays off "
        "while D does not overfit)",
        {"arch": "stylegan2", "g": {"channel_base": 16384, "channel_max": 512},
         "d": {"channel_base": 16384, "channel_max": 512}, "loss": "bce", "batch": 32, "lr_g": 0.0025,
         "lr_d": 0.0025, "beta1_g": 0.0, "beta2_g": 0.99, "beta1_d": 0.0, "beta2_d": 0.99, "n_dis": 1,
         "r1_gamma": None, "r1_every": 16, "ema_kimg": 10.0, "ema_rampup": 0.05,
         "augment": "translation,color,cutout", "ada_target": 0.6, "ada_kimg": 100.0,
         "tick_kimg": 50.0, "grid_kimg": 500.0, "fid_kimg": 1000.0},
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def resolve(name: str | None, given: dict[str, Any]) -> dict[str, Any]:
    """The preset's overrides with ``given`` on top (``g``/``d`` merged field by field)."""
    if name is None:
        return dict(given)
    if name not in PRESETS:
        raise FaceganError(f"--preset {name!r}: unknown; choose one of {', '.join(PRESETS)}")
    from facegan.train.config import merge_given

    return {**merge_given(PRESETS[name].overrides, given), "preset": name}


def describe(width: int | None = None) -> str:
    """The presets as lines for --help (wrapped to ``width`` columns when given)."""
    import textwrap

    pad = max(map(len, PRESETS))
    if width is None:
        return "\n".join(f"  {name:<{pad}} {p.summary}" for name, p in PRESETS.items())
    return "\n".join(textwrap.fill(p.summary, width, initial_indent=f"  {name:<{pad}} ",
                                    subsequent_indent=" " * (pad + 3))
                      for name, p in PRESETS.items())
