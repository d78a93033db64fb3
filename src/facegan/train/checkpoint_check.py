"""Is a loaded checkpoint what it claims to be? Checked before any network is built for real.

A checkpoint that loads "weights only" can still be hostile or damaged: a config asking for a
4 TB first layer (a 1 KB file), a config that is a string, weights of another width, a training
checkpoint without weights. :func:`check_state` finds each of these and raises one
:class:`~facegan.errors.FaceganError` naming the file:

- the config must be a dict whose ``arch``, ``g`` (and for training, ``d``) build networks on
  PyTorch's ``meta`` device — shapes only, no memory — of at most
  :data:`MAX_PARAMS` parameters;
- every stored state dict must hold tensors with exactly the names and shapes of those
  networks' (so loading it never reallocates, and the memory used is bounded by the file);
- a training checkpoint must hold the counters, optimiser, loader and random states a resume
  reads, of the right types.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facegan.errors import FaceganError
from facegan.safeload import library_reason

#: The most parameters a checkpoint's network may have (800 MB as fp32): facegan's largest
#: 64x64 models have under 40 million; a config asking for more is refused before building.
MAX_PARAMS = 200_000_000

#: What a resume reads from any training checkpoint, and the type each must have.
_TRAINING_KEYS: dict[str, type | tuple[type, ...]] = {
    "nimg": int, "step": int, "elapsed": (int, float), "loader": dict, "rng": list,
}
#: ... and from a GAN's (the method's own keys; checked first, as before methods existed).
_GAN_KEYS: dict[str, type | tuple[type, ...]] = {"G": dict, "D": dict, "opt_g": dict, "opt_d": dict}


def _meta_network(kind: str, config: dict[str, Any], path: Path) -> nn.Module:
    """The network ``kind`` of ``config`` built on the meta device (shapes, no memory)."""
    from facegan.models.registry import build

    arch, sub = config.get("arch"), config.get(kind[0])
    if not isinstance(arch, str):
        raise FaceganError(f"{path}: damaged checkpoint: its config has no architecture name ('arch')")
    if not isinstance(sub, dict):
        raise FaceganError(f"{path}: damaged checkpoint: its config has no {kind} settings ({kind[0]!r} is "
                           f"{type(sub).__name__})")
    try:
        with torch.device("meta"):
            net = build(kind, arch, sub)
    except FaceganError as exc:
        raise FaceganError(f"{path}: its config does not build a {kind}: {exc}") from None
    except Exception as exc:  # a wrong type deep in a constructor: TypeError, RuntimeError...
        raise FaceganError(f"{path}: its config does not build a {kind} ({library_reason(exc)})") from None
    n = sum(t.numel() for t in net.state_dict().values())
    if n > MAX_PARAMS:
        raise FaceganError(f"{path}: refused: its config asks for a {kind} of {n:,} parameters "
                           f"(at most {MAX_PARAMS:,}); nothing was allocated")
    return net


def check_state_dict(stored: Any, net: nn.Module, path: Path, what: str) -> None:
    """``stored`` must hold exactly ``net``'s tensors, with the same shapes."""
    if not isinstance(stored, dict):
        raise FaceganError(f"{path}: damaged checkpoint: the {what} weights are {type(stored).__name__}, not tensors")
    want = net.state_dict()
    missing = [k for k in want if k not in stored]
    extra = [k for k in stored if k not in want]
    if missing or extra:
        detail = f"missing {missing[0]!s:.80}" if missing else f"unexpected {str(extra[0])[:80]}"
        raise FaceganError(f"{path}: the {what} weights do not match its config ({len(missing)} missing, "
                           f"{len(extra)} unexpected: {detail})")
    for key, ref in want.items():
        t = stored[key]
        if not isinstance(t, torch.Tensor):
            raise FaceganError(f"{path}: the {what} weight {key} is {type(t).__name__}, not a tensor")
        if tuple(t.shape) != tuple(ref.shape):
            raise FaceganError(f"{path}: the {what} weights do not match its config: {key} is "
                               f"{tuple(t.shape)}, the config builds {tuple(ref.shape)} (another width?)")
        if t.is_floating_point() != ref.is_floating_point():
            raise FaceganError(f"{path}: the {what} weight {key} has dtype {t.dtype}, expected {ref.dtype}")


def check_keys(state: dict[str, Any], path: Path, keys: dict[str, type | tuple[type, ...]]) -> None:
    """Each of ``keys`` must be in ``state`` with its type (a resume reads them)."""
    for key, kind in keys.items():
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            got = "missing" if key not in state else type(value).__name__
            raise FaceganError(f"{path}: damaged checkpoint: {key!r} is {got}; it cannot be resumed "
                               "(sample from it, or start a new run)")


def check_training(state: dict[str, Any], path: Path) -> None:
    """The generic keys the loop writes into every training checkpoint, whatever its method."""
    check_keys(state, path, _TRAINING_KEYS)
    if state["nimg"] < 0 or state["step"] < 0 or not math.isfinite(state["elapsed"]) or state["elapsed"] < 0:
        raise FaceganError(f"{path}: damaged checkpoint: negative or non-finite counters")
    if not state["rng"] or not all(isinstance(r, dict) for r in state["rng"]):
        raise FaceganError(f"{path}: damaged checkpoint: no random states")


def _check_gan_training(state: dict[str, Any], path: Path, nets: dict[str, nn.Module]) -> None:
    check_keys(state, path, _GAN_KEYS)
    check_training(state, path)
    amp = state.get("amp")  # fp16's loss scales (format 2 from session 6 on; None unless fp16)
    if amp is not None and not (isinstance(amp, dict) and all(
            isinstance(amp.get(k), dict) and isinstance(amp[k].get("scale"), (int, float))
            and math.isfinite(amp[k]["scale"]) and amp[k]["scale"] > 0 for k in ("scaler_d", "scaler_g"))):
        raise FaceganError(f"{path}: damaged checkpoint: the fp16 loss-scaler state 'amp' is malformed")
    for opt, net in (("opt_g", nets["generator"]), ("opt_d", nets["discriminator"])):
        groups = state[opt].get("param_groups")
        if not isinstance(groups, list) or not isinstance(state[opt].get("state"), dict):
            raise FaceganError(f"{path}: damaged checkpoint: the optimiser state {opt!r} is malformed")
        n_params = sum(len(g.get("params", ())) for g in groups if isinstance(g, dict))
        if n_params != len(list(net.parameters())):
            raise FaceganError(f"{path}: damaged checkpoint: {opt!r} is for {n_params} tensors, the network has "
                               f"{len(list(net.parameters()))}")


def check_state(state: dict[str, Any], path: str | Path) -> None:
    """Raise :class:`FaceganError` unless ``state`` (a loaded checkpoint) is usable as it claims.

    A training checkpoint is checked by the method its config names (none named: the GAN), then
    for the keys every training checkpoint holds; an exported generator is a GAN's."""
    path = Path(path)
    if state["format"] == "facegan-generator-1":
        check_gan_state(state, path)
        return
    from facegan.train.methods import DEFAULT_METHOD, get_method, method_of

    try:
        entry = get_method(method_of(state["config"]))
    except FaceganError as exc:
        raise FaceganError(f"{path}: {exc}") from None
    entry.obj.check_checkpoint(state, path)
    if entry.name != DEFAULT_METHOD:
        check_training(state, path)


def check_gan_state(state: dict[str, Any], path: Path) -> None:
    """A GAN's checkpoint (or exported generator): networks of its config, weights of their shapes."""
    config = state["config"]
    training = state["format"] != "facegan-generator-1"
    nets = {"generator": _meta_network("generator", config, path)}
    if training:
        nets["discriminator"] = _meta_network("discriminator", config, path)
    for key, kind, label in (("G", "generator", "generator"), ("G_ema", "generator", "EMA generator"),
                             ("D", "discriminator", "discriminator")):
        if state.get(key) is not None and kind in nets:
            check_state_dict(state[key], nets[kind], path, label)
    if training:
        _check_gan_training(state, path, nets)
    elif state.get("G") is None and state.get("G_ema") is None:
        raise FaceganError(f"{path}: an exported file without a generator's weights")
