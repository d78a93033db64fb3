"""Typed dataclass configs and the command-line options generated from them.

A config is a plain ``@dataclass`` whose fields each carry a docstring (a string literal right
below the field, as in litgpt). :func:`add_dataclass_arguments` turns every field into an
``--option`` whose help is that docstring and whose default is the field's, so defaults live in
one place; :func:`dataclass_from_args` builds the config back from the parsed namespace, which
runs the config's own ``__post_init__`` validation.

Supported field types: ``int``, ``float``, ``str``, ``bool`` (``--x/--no-x``), ``Literal[...]``
(choices) and ``X | None`` of those.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from functools import lru_cache
from typing import Any, Literal, TypeVar

T = TypeVar("T")


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` read from the class source (attribute docstrings)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: tuple[str, ...] = (),
) -> None:
    """Add one ``--option`` per field of dataclass ``cls`` (defaults left as ``SUPPRESS``).

    Options not given on the command line are absent from the namespace, so the dataclass
    default applies (and a resumed run can tell "given" from "defaulted").
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = docs.get(f.name, "")
        if default not in (None, ""):  # "(default: None)" tells a reader nothing
            help_text = f"{help_text} (default: {default})" if help_text else f"default: {default}"
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": f.name}
        if tp is bool:
            parser.add_argument(_option(f.name), action=argparse.BooleanOptionalAction, **kw)
            continue
        if typing.get_origin(tp) is Literal:
            choices = typing.get_args(tp)
            kw.update(choices=choices, type=type(choices[0]), metavar="{" + ",".join(map(str, choices)) + "}")
        elif tp in (int, float, str):
            kw.update(type=tp, metavar=f.name.upper())
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported type {tp!r} for a CLI option")
        if optional:
            base = kw["type"]
            kw["type"] = lambda s, base=base: None if s.lower() == "none" else base(s)
        parser.add_argument(_option(f.name), **kw)


def dataclass_from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """Build ``cls`` from the fields present in ``args`` (plus ``overrides``)."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    return cls(**values)


def given_fields(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` that were given explicitly on the command line."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return {k: v for k, v in vars(args).items() if k in names}


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (for ``config.json`` and checkpoints)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a config from :func:`to_dict` output, ignoring unknown keys from newer versions."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: v for k, v in data.items() if k in names})
