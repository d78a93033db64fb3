"""``facegan cnn``: the lecture's convolutional networks — arithmetic, architectures, tables.

    facegan cnn size 7 3 2                      # 7x7 input, 3x3 filter, stride 2 -> 3
    facegan cnn size 32 5 1 2 --channels 3 --filters 10   # -> 32x32x10, 760 parameters
    facegan cnn params 5 3 10                   # ten 5x5x3 filters -> 760
    facegan cnn rf 3 3 3                        # three 3x3 layers see 7x7
    facegan cnn list
    facegan cnn summary alexnet                 # [55x55x96] CONV1: 96 11x11 filters at stride 4, pad 0 ...
    facegan cnn summary resnet50 --input 3x64x64 --set num_classes=10
    facegan cnn summary alexnet --input 227x227x3   # HxWxC, the lecture's way of writing volumes
    facegan cnn summary dcgan-g                 # the GAN networks too (NAME-g / NAME-d)
"""

from __future__ import annotations

import argparse
import ast
from typing import Any

from facegan.errors import FaceganError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cnn",
        help="the lecture's CNNs: output sizes, parameters, architectures, layer tables",
        description="The lecture's convolutional networks: conv arithmetic, the architecture "
        "zoo (LeNet-5, AlexNet, VGG, GoogLeNet, ResNets, 1-D/3-D CNNs) and lecture-style "
        "layer tables of any of them or of the GAN networks.",
    )
    cmds = p.add_subparsers(dest="cnn_command", required=True, metavar="ACTION")

    s = cmds.add_parser("size", help="output size (N - F + 2P)/S + 1 of a conv layer",
                        description="Output size of a convolution (or pooling) layer; an error "
                        "when the filter doesn't fit (PyTorch would silently floor).")
    s.add_argument("n", type=int, metavar="N", help="input size (one side: 7 for 7x7)")
    s.add_argument("f", type=int, metavar="F", help="filter size (one side)")
    s.add_argument("stride", type=int, nargs="?", default=1, metavar="S", help="stride (default 1)")
    s.add_argument("padding", type=int, nargs="?", default=0, metavar="P", help="zero padding (default 0)")
    s.add_argument("--dilation", type=int, default=1, help="dilation (default 1)")
    s.add_argument("--transposed", action="store_true",
                   help="a transposed convolution: (N - 1)S - 2P + F + output padding")
    s.add_argument("--output-padding", type=int, default=0, help="transposed only (default 0)")
    s.add_argument("--channels", type=int, help="input depth C: also print the volumes")
    s.add_argument("--filters", type=int, help="number of filters K: also print the volume and parameters")
    s.set_defaults(func=run_size)

    q = cmds.add_parser("params", help="parameters of K filters of size FxFxC",
                        description="Learnable parameters of a conv layer: K x (F*F*C + 1).")
    q.add_argument("f", type=int, metavar="F", help="filter size (one side)")
    q.add_argument("c_in", type=int, metavar="C", help="input depth")
    q.add_argument("k", type=int, metavar="K", help="number of filters")
    q.add_argument("--no-bias", dest="bias", action="store_false", help="filters without bias")
    q.set_defaults(func=run_params)

    r = cmds.add_parser("rf", help="receptive field of a stack of layers",
                        description="How many input positions one output of a stack sees. "
                        "Layers are F or F/S (filter/stride), first layer first: "
                        "'3 3 3' -> 7; '11/4 3/2 5' -> AlexNet's CONV1, POOL1, CONV2.")
    r.add_argument("layers", nargs="+", metavar="F[/S]", help="filter size, optionally /stride")
    r.set_defaults(func=run_rf)

    ls = cmds.add_parser("list", help="the architectures of the lecture (and the GAN networks)")
    ls.set_defaults(func=run_list)

    m = cmds.add_parser("summary", help="lecture-style layer table of a model",
                        description="One row per layer in the order they run: output volume "
                        "(HxWxC), layer, filters/size/stride/pad, parameters; then totals. "
                        "Runs on the 'meta' device: no weights are allocated.")
    m.add_argument("model", help="a name from 'facegan cnn list' (GAN networks: NAME-g / NAME-d)")
    m.add_argument("--input", type=_shape, metavar="CxHxW|HxWxC",
                   help="input shape without batch, channels first (3x227x227, as PyTorch) or last "
                        "(227x227x3, as the lecture's volumes); default: the model's own")
    m.add_argument("--all", dest="all_layers", action="store_true",
                   help="also list element-wise layers (ReLU, dropout, flatten)")
    m.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="a model option, e.g. --set num_classes=10 --set groups=2 (repeatable)")
    m.set_defaults(func=run_summary)


_SHAPE_FORMS = "CxHxW (channels first, e.g. 3x227x227) or HxWxC (channels last, e.g. 227x227x3)"


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.lower().replace("×", "x").replace(" ", "").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {_SHAPE_FORMS}") from None
    if any(s < 1 for s in shape):
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive")
    return shape


def channels_first(shape: tuple[int, ...], natural: tuple[int, ...], channels: int, name: str) -> tuple[int, ...]:
    """``shape`` as PyTorch wants it (channels first), given either way round.

    With as many sizes as the model's ``natural`` input (2+: a channel axis), the side that holds
    the model's ``channels`` is the channel axis; first wins when both do (3x64x3). A vector
    input (a generator's z) is taken as it is.
    """
    if len(shape) != len(natural) or len(natural) < 2:
        return shape
    if shape[0] == channels:
        return shape
    if shape[-1] == channels:
        return (shape[-1], *shape[:-1])
    shown = "x".join(map(str, shape))
    raise FaceganError(f"--input {shown}: {name} takes {channels} input channel(s): expected {_SHAPE_FORMS}"
                       f" with C = {channels}")


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise FaceganError(f"--set {text!r}: expected KEY=VALUE, e.g. num_classes=10")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a plain string such as norm=group


def run_size(args: argparse.Namespace) -> int:
    from facegan.cnn.arithmetic import conv_output_size, conv_params, conv_transpose_output_size

    n, f, s, p = args.n, args.f, args.stride, args.padding
    if (args.channels is None) != (args.filters is None):
        raise FaceganError("--channels and --filters go together (input depth C, filters K)")
    if args.transposed:
        out = conv_transpose_output_size(n, f, s, p, args.output_padding, args.dilation)
        print(f"transposed: (N - 1)S - 2P + D(F - 1) + OP + 1 = ({n} - 1)*{s} - 2*{p} + "
              f"{args.dilation}*({f} - 1) + {args.output_padding} + 1 = {out}")
    else:
        out = conv_output_size(n, f, s, p, args.dilation)
        span = args.dilation * (f - 1) + 1
        if args.dilation != 1:  # a dilated filter spans D(F - 1) + 1 inputs
            print(f"dilated filter: D(F - 1) + 1 = {args.dilation}*({f} - 1) + 1 = {span}")
        print(f"(N - F + 2P)/S + 1 = ({n} - {span} + 2*{p})/{s} + 1 = {out}")
    if args.channels is not None:
        c, k = args.channels, args.filters
        params = conv_params(f, c, k)
        print(f"{n}x{n}x{c} input, {k} {f}x{f} filters at stride {s}, pad {p} -> "
              f"{out}x{out}x{k} output; {k} x ({f}*{f}*{c} + 1) = {params:,} parameters")
    return 0


def run_params(args: argparse.Namespace) -> int:
    from facegan.cnn.arithmetic import conv_params

    n = conv_params(args.f, args.c_in, args.k, bias=args.bias)
    bias = " + 1" if args.bias else ""
    print(f"{args.k} x ({args.f}*{args.f}*{args.c_in}{bias}) = {n:,} parameters")
    return 0


def run_rf(args: argparse.Namespace) -> int:
    from facegan.cnn.arithmetic import receptive_field

    layers = []
    for text in args.layers:
        try:
            layers.append(tuple(int(v) for v in text.split("/")))
        except ValueError:
            raise FaceganError(f"layer {text!r}: expected F or F/S, e.g. 3 or 11/4") from None
    rf = receptive_field(layers)
    print(f"{len(layers)} layer(s) {' '.join(args.layers)}: each output sees {rf}x{rf} inputs")
    return 0


def run_list(args: argparse.Namespace) -> int:
    import torch

    from facegan.cnn import zoo

    rows = []
    for name in zoo.list_models():
        spec = zoo.get_spec(name)
        with torch.device("meta"):  # counting parameters needs no memory
            n = sum(p.numel() for p in zoo.create_model(name).parameters())
        rows.append((name, "x".join(map(str, spec.input_shape)), f"{n / 1e6:.2f}M", spec.description))
    for name in zoo.gan_models():
        with torch.device("meta"):
            model, shape = zoo.build_model(name)
        n = sum(p.numel() for p in model.parameters())
        kind = "generator" if name.endswith("-g") else "discriminator"
        rows.append((name, "x".join(map(str, shape)), f"{n / 1e6:.2f}M", f"GAN {kind} (facegan.models.registry)"))
    widths = [max(len(r[i]) for r in rows + [("model", "input", "params", "")]) for i in range(3)]
    print(f"{'model':<{widths[0]}}  {'input':<{widths[1]}}  {'params':>{widths[2]}}  description")
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    return 0


def run_summary(args: argparse.Namespace) -> int:
    import torch

    from facegan.cnn.summary import summarize_by_name
    from facegan.cnn.zoo import build_model

    options = dict(_option(o) for o in args.options)
    shape = args.input
    if shape is not None:
        with torch.device("meta"):  # only the natural shape is wanted: nothing is allocated
            _, natural = build_model(args.model, **options)
        shape = channels_first(shape, tuple(natural), int(options.get("in_channels", natural[0])), args.model)
    print(summarize_by_name(args.model, shape, **options).format(all_layers=args.all_layers))
    return 0
