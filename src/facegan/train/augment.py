"""Differentiable augmentation of every image the discriminator sees (DiffAugment, ADA's p).

Zhao et al. 2020 ("Differentiable Augmentation for Data-Efficient GAN Training"): with few
training photos D memorises them; augmenting *both* real and fake images before D — with
operations G's gradient can pass through — keeps D honest without teaching G to make augmented
faces. Karras et al. 2020 (StyleGAN2-ADA) add an adaptive strength: each augmentation is applied
to an image with probability ``p``, and ``p`` follows D's overfitting signal
``r_t = E[sign D(real)]`` towards a target (0.6 in the paper): up when D is too sure of the real
photos, down otherwise.

The three families, each written so that images in [-1, 1] stay in [-1, 1] (every colour change
is a convex combination, padding is 0 = mid-grey) and every step is differentiable in ``x``:

============ ===================================================================================
color        brightness (blend towards black or white by up to 1/2), saturation (blend towards
             the image's grey by up to 1), contrast (blend towards the image mean by up to 1/2)
translation  shift by up to 1/8 of the size in x and y, zero-padded
cutout       zero one square of half the size at a random place
============ ===================================================================================

Randomness comes from the augmenter's own generator (saved in checkpoints), so training stays
reproducible; with ``p = 0`` nothing is drawn and the images pass through untouched.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from facegan.errors import FaceganError

def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ("color", "translation"); ``"none"`` or ``""`` -> ()."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip() and p.strip() != "none")
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise FaceganError(f"--augment: unknown augmentation(s) {', '.join(unknown)}; use {', '.join(FAMILIES)} or none")
    return tuple(n for n in FAMILIES if n in names)


def _chosen(b: int, p: float, g: torch.Generator, device) -> torch.Tensor:
    """(B, 1, 1, 1) float mask: 1 for the images this augmentation applies to."""
    return (torch.rand(b, 1, 1, 1, generator=g, device=device) < p).float()


def color(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Brightness, saturation, contrast, each on a share ``p`` of the images of ``x`` (B, 3, H, W)."""
    b, dev = x.shape[0], x.device
    # brightness: t in [-1/2, 1/2]; blend towards +1 (t > 0) or -1 (t < 0) by |t|
    t = (torch.rand(b, 1, 1, 1, generator=g, device=dev) - 0.5) * _chosen(b, p, g, dev)
    x = x + t.clamp(min=0) * (1 - x) + t.clamp(max=0) * (1 + x)
    # saturation: s in [0, 1] of the way towards the grey of each pixel
    s = torch.rand(b, 1, 1, 1, generator=g, device=dev) * _chosen(b, p, g, dev)
    grey = x.mean(dim=1, keepdim=True)
    x = x + s * (grey - x)
    # contrast: c in [0, 1/2] of the way towards the image's mean
    c = torch.rand(b, 1, 1, 1, generator=g, device=dev) * 0.5 * _chosen(b, p, g, dev)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return x + c * (mean - x)


def translation(x: torch.Tensor, p: float, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift a share ``p`` of the images by up to ``ratio`` of their size, zero-padded."""
    b, _, h, w = x.shape
    dev = x.device
    sy, sx = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    on = _chosen(b, p, g, dev).view(b, 1).long()
    ty = torch.randint(-sy, sy + 1, (b, 1), generator=g, device=dev) * on  # (B, 1)
    tx = torch.randint(-sx, sx + 1, (b, 1), generator=g, device=dev) * on
    padded = F.pad(x, (sx, sx, sy, sy))  # (B, C, H + 2sy, W + 2sx)
    rows = torch.arange(h, device=dev).view(1, h) + sy - ty  # (B, H): source row of each output row
    cols = torch.arange(w, device=dev).view(1, w) + sx - tx  # (B, W)
    bi = torch.arange(b, device=dev).view(b, 1, 1)
    out = padded.permute(0, 2, 3, 1)[bi, rows.view(b, h, 1), cols.view(b, 1, w)]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous(memory_format=_format_of(x))


def cutout(x: torch.Tensor, p: float, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` of the size at a random place in a share ``p`` of the images."""
    b, _, h, w = x.shape
    dev = x.device
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    # top-left corners such that the square's centre lies anywhere in the image (it may be cut off)
    y0 = torch.randint(-(ch // 2), h - ch // 2, (b, 1, 1), generator=g, device=dev)
    x0 = torch.randint(-(cw // 2), w - cw // 2, (b, 1, 1), generator=g, device=dev)
    on = _chosen(b, p, g, dev).view(b, 1, 1)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)  # (B, H, W)
    keep = 1.0 - inside.float() * on
    return x * keep.unsqueeze(1).to(x.dtype)


def _format_of(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


#: Every augmentation family by name, in the order they are applied: the one list of them (the
#: ``--augment`` help, its check and the augmenter all read it).
OPS: dict[str, Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]] = {
    "color": color, "translation": translation, "cutout": cutout,
}
#: The family names alone, in the order they are applied.
FAMILIES: tuple[str, ...] = tuple(OPS)


class Augment:
    """The augmentation in front of D, with a fixed or adaptive probability ``p``.

    Args:
        policy: families to apply (see :func:`parse_policy`).
        p: probability that each family is applied to an image (the starting value when adaptive).
        device: where the images are (the augmenter's generator lives there).
        seed: seed of the augmenter's own random generator.
        target: None for a fixed ``p``; else the target of ``r_t = E[sign D(real)]``.
        speed_img: images over which ``p`` can move by 1 (ADA's 500k; smaller for small sets).
        interval: adjust ``p`` every this many D steps.
        p_max: upper bound of the adaptive ``p`` (ADA: no bound; leaking shows near 0.8+).
    """

    def __init__(self, policy: tuple[str, ...], p: float, device: torch.device | str, seed: int = 0, *,
                 target: float | None = None, speed_img: float = 100_000, interval: int = 4, p_max: float = 0.8):
        self.policy, self.p, self.target = policy, float(p), target
        self.speed_img, self.interval, self.p_max = speed_img, interval, p_max
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self._signs = torch.zeros((), device=device)  # sum of sign(D(real)) since the last adjustment
        self._count = 0  # real logits summed into _signs
        self._steps = 0
        self.r_t: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.policy) and (self.p > 0 or self.target is not None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Augment a batch (B, 3, H, W) in [-1, 1]; the identity while ``p`` is 0."""
        if not self.policy or self.p <= 0:
            return x
        for name in self.policy:
            x = OPS[name](x, self.p, self.generator)
        return x

    def observe(self, real_logits: torch.Tensor, batch_images: int) -> None:
        """After a D step: collect ``sign(D(real))``; every ``interval`` steps move ``p`` by
        ``sign(r_t - target) * images / speed_img`` (StyleGAN2-ADA's rule)."""
        if self.target is None:
            return
        self._signs += real_logits.detach().float().sign().sum()
        self._count += real_logits.numel()
        self._steps += 1
        if self._steps % self.interval:
            return
        self.r_t = float(self._signs) / max(self._count, 1)  # one sync every `interval` steps
        step = batch_images * self.interval / self.speed_img
        self.p = min(self.p_max, max(0.0, self.p + (step if self.r_t > self.target else -step)))
        self._signs.zero_()
        self._count = 0

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "generator": self.generator.get_state(), "signs": self._signs.cpu(),
                "count": self._count, "steps": self._steps, "r_t": self.r_t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = float(state["p"])
        self.generator.set_state(state["generator"])
        self._signs.copy_(state["signs"])
        self._count, self._steps, self.r_t = int(state["count"]), int(state["steps"]), state["r_t"]
