"""The lecture's convolution arithmetic: output sizes, parameter counts, receptive fields.

All functions work on one spatial dimension with plain integers (a square 7×7 input is ``n=7``).
Output sizes follow the lecture's formula ``(N - F + 2P) / S + 1``. Where the division is not
exact the filter "doesn't fit": the last positions of the input would never be covered by a
window, and PyTorch silently drops them (it floors). We raise :class:`DoesNotFitError` instead,
unless ``strict=False`` asks for PyTorch's behaviour.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from facegan.errors import FaceganError


class DoesNotFitError(FaceganError, ValueError):
    """A filter/stride/padding combination that does not tile the input (or leaves nothing)."""


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if int(v) != v or v < 1:
            raise FaceganError(f"{name} must be a positive integer, got {v!r}")


def _check_padding(padding: int) -> None:
    if int(padding) != padding or padding < 0:
        raise FaceganError(f"padding must be a non-negative integer, got {padding!r}")


def conv_output_size(
    n: int, f: int, stride: int = 1, padding: int = 0, dilation: int = 1, *, strict: bool = True
) -> int:
    """Output size of a convolution (or pooling) window ``f`` over an input of size ``n``.

    ``(N + 2P - D(F - 1) - 1) / S + 1``, which is the lecture's ``(N - F + 2P) / S + 1`` for
    ``D = 1`` (a dilated filter spans ``D(F - 1) + 1`` input positions).

    >>> conv_output_size(7, 3, stride=1), conv_output_size(7, 3, stride=2)
    (5, 3)
    >>> conv_output_size(32, 5, stride=1, padding=2)
    32

    Raises :class:`DoesNotFitError` when the filter is larger than the padded input, or — with
    ``strict`` (the default) — when the stride does not divide ``N + 2P - span`` exactly
    (7×7 input, 3×3 filter, stride 3). ``strict=False`` floors like PyTorch does.
    """
    _check_positive(n=n, f=f, stride=stride, dilation=dilation)
    _check_padding(padding)
    span = dilation * (f - 1) + 1
    room = n + 2 * padding - span
    desc = f"input {n}, filter {f}, stride {stride}, pad {padding}" + (
        f", dilation {dilation}" if dilation != 1 else ""
    )
    if room < 0:
        raise DoesNotFitError(
            f"doesn't fit: {desc}: the filter spans {span} but the padded input is only "
            f"{n + 2 * padding}"
        )
    if strict and room % stride:
        raise DoesNotFitError(
            f"doesn't fit: {desc}: (N - F + 2P)/S + 1 = ({n} - {span} + {2 * padding})/{stride} + 1 "
            f"= {room / stride + 1:.2f} is not an integer (PyTorch would silently floor it to "
            f"{room // stride + 1} and ignore the last {room % stride} input position(s))"
        )
    return room // stride + 1


def conv_transpose_output_size(
    n: int,
    f: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Output size of a transposed convolution: ``(N - 1)S - 2P + D(F - 1) + output_padding + 1``.

    It is the twin of :func:`conv_output_size`: a convolution with the same ``f, stride,
    padding`` maps the result back to ``n`` (for ``output_padding = 0``). The DCGAN generator's
    4×4 filters at stride 2, pad 1 double the size: ``conv_transpose_output_size(8, 4, 2, 1) == 16``.

    Raises :class:`DoesNotFitError` when the padding crops away everything, or when
    ``output_padding`` is not smaller than the stride or the dilation (PyTorch's rule: it only
    chooses among the sizes a strided convolution would map back to ``n``).
    """
    _check_positive(n=n, f=f, stride=stride, dilation=dilation)
    _check_padding(padding)
    if int(output_padding) != output_padding or output_padding < 0:
        raise FaceganError(f"output_padding must be a non-negative integer, got {output_padding!r}")
    if output_padding >= max(stride, dilation):
        raise DoesNotFitError(
            f"doesn't fit: output_padding {output_padding} must be smaller than the stride "
            f"{stride} or the dilation {dilation}"
        )
    out = (n - 1) * stride - 2 * padding + dilation * (f - 1) + output_padding + 1
    if out < 1:
        raise DoesNotFitError(
            f"doesn't fit: transposed conv of input {n}, filter {f}, stride {stride}, pad "
            f"{padding} leaves {out} output positions"
        )
    return out


def conv_params(f: int | Sequence[int], c_in: int, k: int, bias: bool = True, groups: int = 1) -> int:
    """Learnable parameters of a conv layer with ``k`` filters of size ``f`` × ``f`` × ``c_in``.

    Each filter has ``F·F·C_in`` weights (``F·F·C_in/groups`` when grouped) plus one bias:
    ten 5×5×3 filters have ``10 · (5·5·3 + 1) = 760`` parameters. ``f`` may be a tuple for
    non-square or 1-D/3-D filters (``(3, 3, 3)`` for a 3-D conv, ``(5,)`` for a 1-D one).
    """
    dims = (f, f) if isinstance(f, int) else tuple(f)  # an int is a square F x F filter
    _check_positive(c_in=c_in, k=k, groups=groups, **{f"f[{i}]": d for i, d in enumerate(dims)})
    if c_in % groups or k % groups:
        raise FaceganError(f"groups={groups} must divide both c_in={c_in} and k={k}")
    per_filter = c_in // groups
    for d in dims:
        per_filter *= d
    return k * per_filter + (k if bias else 0)


def _layer(spec: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(spec, int):
        f, s, d = spec, 1, 1
    else:
        spec = tuple(spec)
        if not 1 <= len(spec) <= 3:
            raise FaceganError(f"a layer is F, (F, S) or (F, S, D); got {spec!r}")
        f, s, d = (*spec, 1, 1)[:3]
    _check_positive(f=f, stride=s, dilation=d)
    return f, s, d


def receptive_field(layers: Iterable[int | Sequence[int]]) -> int:
    """How many input positions (per dimension) one output of a stack of layers sees.

    ``layers`` lists each layer's filter size ``F`` or ``(F, stride)`` or ``(F, stride,
    dilation)``, first layer first. Each layer widens the field by ``(F_eff - 1)`` times the
    product of the strides before it ("jump"), with ``F_eff = D(F - 1) + 1``:

    >>> receptive_field([3, 3, 3])      # three 3x3 convs see 7x7, like one 7x7
    7
    >>> receptive_field([(11, 4), (3, 2), (5, 1)])   # AlexNet CONV1, POOL1, CONV2
    51
    """
    rf, jump = 1, 1
    for spec in layers:
        f, s, d = _layer(spec)
        rf += d * (f - 1) * jump
        jump *= s
    return rf


def stack_output_sizes(n: int, layers: Iterable[Sequence[int]], *, strict: bool = True) -> list[int]:
    """Sizes after each layer ``(F, S, P)`` of a stack applied to an input of size ``n``.

    >>> stack_output_sizes(227, [(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0)])
    [55, 27, 27, 13]

    Errors name the layer (1-based) that doesn't fit.
    """
    sizes: list[int] = []
    for i, spec in enumerate(layers, 1):
        spec = tuple(spec)
        if not 1 <= len(spec) <= 3:
            raise FaceganError(f"layer {i}: expected (F, S, P), got {spec!r}")
        f, s, p = spec + (1, 0)[len(spec) - 1 :]
        try:
            n = conv_output_size(n, f, s, p, strict=strict)
        except DoesNotFitError as exc:
            raise DoesNotFitError(f"layer {i}: {exc}") from None
        sizes.append(n)
    return sizes
