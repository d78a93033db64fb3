"""Reading files facegan (or someone) wrote earlier, without trusting a single byte of them.

Three readers, each bounded by what the file can honestly hold *before* anything is allocated:

- :func:`torch_load` — a ``torch.save`` file (a zip) read as weights only. ``torch.save`` stores
  its records uncompressed, so a record that is compressed (a 2 MB file inflating to 2 GiB of
  zeros) or that claims more bytes than the file has is refused from the zip's directory, unread;
  everything loaded then fits in the file's own size.
- :func:`npz_arrays` — chosen arrays of a ``.npz``: each ``.npy`` header is read first, the shape
  checked against what the caller expects and against the bytes the member really stores (a
  100,000 x 100,000 ``sigma`` in 8 bytes of data is refused, not allocated), compressed members
  inflated only up to that size; keys not asked for are never read; pickled objects never load.
- :func:`npy_header` — the shape and dtype of a ``.npy``, checked against the file size.

Every refusal is a :class:`FaceganError` naming the file in one line. Library messages are
never passed on as they are: PyTorch's and NumPy's suggest ``weights_only=False`` or
``allow_pickle=True``, which would let a crafted file run code (see :func:`library_reason`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facegan.errors import FaceganError

#: Records in one ``torch.save`` file: a big checkpoint has a few hundred.
MAX_TORCH_RECORDS = 100_000
_UNSAFE_ADVICE = re.compile(r"weights_only|allow_pickle|pickle|unsafe|trust", re.IGNORECASE)


def library_reason(exc: BaseException) -> str:
    """A short reason from a library exception, safe to show: its first line, cut to 120
    characters, or only its type when the text gives advice that would be unsafe to follow
    (``weights_only=False``, ``allow_pickle=True``) or is no help (``invalid <lambda> value``)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not text or _UNSAFE_ADVICE.search(str(exc)) or "<lambda>" in text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text[:120]}"


def check_torch_zip(path: Path) -> None:
    """Refuse a ``torch.save`` file whose records could inflate past the file's own size."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise FaceganError(f"{path}: not a readable checkpoint (not a file written by torch.save)") from None
    if len(infos) > MAX_TORCH_RECORDS:
        raise FaceganError(f"{path}: not a readable checkpoint ({len(infos):,} records; refused unread)")
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise FaceganError(f"{path}: refused: the record {info.filename[:80]!r} is compressed "
                               f"({info.compress_size:,} bytes inflating to {info.file_size:,}); "
                               "torch.save never compresses, so this file was not written by facegan")
        if info.header_offset + info.compress_size > size:
            raise FaceganError(f"{path}: refused: the record {info.filename[:80]!r} claims "
                               f"{info.file_size:,} bytes, more than the file holds (truncated or crafted)")


def torch_load(path: Path, allow: list[Any] | None = None) -> Any:
    """``torch.load(weights_only=True)`` of ``path`` after :func:`check_torch_zip`.

    ``allow`` is passed to :func:`torch.serialization.safe_globals` (extra classes that rebuild
    without running code). :class:`pickle.UnpicklingError` is passed on for the caller to word
    (a hostile file asks for a global; a damaged one does not); anything else becomes "not a
    readable checkpoint" without PyTorch's text.
    """
    import torch

    check_torch_zip(path)
    guard = torch.serialization.safe_globals(allow) if allow else contextlib.nullcontext()
    try:
        with guard:
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise
    except MemoryError:
        raise FaceganError(f"{path}: refused: loading it needs more memory than it can honestly need") from None
    except Exception as exc:  # zip, storage and torch errors all mean "not a readable checkpoint"
        raise FaceganError(f"{path}: not a readable checkpoint ({library_reason(exc)})") from None


def _npy_member_header(f, path: Path, key: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"format version {version}")
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(f, max_header_size=10_000)
    except Exception as exc:
        raise FaceganError(f"{path}: {key!r} is not a readable array ({library_reason(exc)})") from None
    if dtype.hasobject:
        raise FaceganError(f"{path}: {key!r} holds Python objects (a pickle), not numbers; refused")
    return tuple(shape), dtype, fortran


#: The most bytes :func:`npz_arrays` reads for one key unless told otherwise.
NPZ_KEY_BYTES = 1 << 20


def npz_arrays(path: str | os.PathLike, keys: dict[str, Callable[[tuple[int, ...]], str | None]],
               optional: tuple[str, ...] = (), max_bytes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the ``.npz`` at ``path``, each checked before it is read.

    ``keys`` maps a key to a function of the stored shape returning why that shape is wrong (a
    message naming the key, shown after the path) or ``None``; the member must also hold exactly ``prod(shape) * itemsize`` bytes of data, and at
    most ``max_bytes[key]`` (default :data:`NPZ_KEY_BYTES`). ``optional`` keys may be missing;
    other keys are never read. Raises :class:`FaceganError` naming the file and the key.
    """
    limits = max_bytes or {}
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise FaceganError(f"{path}: not a readable .npz ({library_reason(exc)})") from None
    with zf:
        members = {i.filename: i for i in zf.infolist()}
        for key, shape_problem in keys.items():
            info = members.get(f"{key}.npy")
            if info is None:
                if key in optional:
                    continue
                have = sorted(n.removesuffix(".npy") for n in members)[:10]
                raise FaceganError(f"{path}: missing {key} (has {', '.join(have) or 'nothing'})")
            try:
                with zf.open(info) as f:
                    shape, dtype, fortran = _npy_member_header(f, path, key)
                    why = shape_problem(shape)
                    if why:
                        raise FaceganError(f"{path}: {why}")
                    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                    cap = limits.get(key, NPZ_KEY_BYTES)
                    if nbytes > cap:
                        raise FaceganError(f"{path}: {key!r} declares {nbytes:,} bytes (shape {shape}), more "
                                           f"than it can need ({cap:,}); refused unread")
                    data_bytes = info.file_size - f.tell()
                    if nbytes != data_bytes:
                        raise FaceganError(f"{path}: {key!r} declares {nbytes:,} bytes of data but holds "
                                           f"{data_bytes:,}; refused (damaged or crafted)")
                    # zipfile never inflates past the member's declared size (checked above)
                    buf = f.read(nbytes)
            except FaceganError:
                raise
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
                raise FaceganError(f"{path}: {key!r} cannot be read ({library_reason(exc)})") from None
            if len(buf) != nbytes:
                raise FaceganError(f"{path}: {key!r} is truncated")
            arr = np.frombuffer(buf, dtype=dtype)
            out[key] = arr.reshape(shape, order="F" if fortran else "C").copy()
    return out


def npy_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of the ``.npy`` at ``path``, checked against its size (a header
    declaring 3,000,000 images over a sparse or short file is refused, not mapped)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            shape, dtype, _ = _npy_member_header(f, path, path.name)
            offset = f.tell()
        size = path.stat().st_size
    except OSError as exc:
        raise FaceganError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if offset + nbytes != size:
        raise FaceganError(f"{path}: its header declares shape {shape} ({nbytes:,} bytes) but the file holds "
                           f"{size - offset:,} bytes of data (damaged, or not written by facegan)")
    return shape, dtype
