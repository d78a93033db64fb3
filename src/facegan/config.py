"""Typed dataclass configs and the command-line options generated from them.

A config is a plain ``@dataclass`` whose fields each carry a docstring (a string literal right
below the field, as in litgpt). :func:`add_dataclass_arguments` turns every field into an
``--option`` whose help is that docstring and whose default is the field's, so defaults live in
one place; :func:`dataclass_from_args` builds the config back from the parsed namespace, which
runs the config's own ``__post_init__`` validation.

Supported field types: ``int``, ``float``, ``str``, ``bool`` (``--x/--no-x``), ``Literal[...]``
(choices) and ``X | None`` of those.

A docstring may name a table of the library by its dotted path in braces, e.g.
``{facegan.train.losses.LOSSES}``: the help lists that table's names (:func:`expand_tables`), read
only when the help is shown, so a list of choices is written once, in the table that implements
them, and building the parser never imports the table's module (often torch).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import re
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


#: ``{facegan.pkg.module.TABLE}`` in a field docstring: the module and the table's name.
_TABLE_REF = re.compile(r"\{(facegan(?:\.\w+)+)\.(\w+)\}")


def expand_tables(text: str) -> str:
    """``text`` with every ``{module.TABLE}`` replaced by the table's names (its keys or items),
    comma-separated: ``{facegan.train.losses.LOSSES}`` -> ``bce, hinge, lsgan``."""
    return _TABLE_REF.sub(lambda m: ", ".join(getattr(importlib.import_module(m[1]), m[2])), text)


class _HelpNamingTables(str):
    """Help text that names tables, expanded when argparse formats it (``help % params``), i.e.
    only for ``--help``: registering every command's options must stay free of heavy imports."""

    def __mod__(self, params: Any) -> str:
        return expand_tables(str(self)) % params


def _help(text: str) -> str:
    return _HelpNamingTables(text) if _TABLE_REF.search(text) else text


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _argument_kwargs(cls: type, f: dataclasses.Field, tp: Any, optional: bool, help_text: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": _help(help_text)}
    if tp is bool:
        kw["action"] = argparse.BooleanOptionalAction
        return kw
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        kw.update(choices=choices, type=type(choices[0]), metavar="{" + ",".join(map(str, choices)) + "}")
    elif f.name == "device" and tp is str:  # auto, cpu, cuda or cuda:N, checked as it is parsed
        from facegan.devices import DEVICE_METAVAR, device_arg

        kw.update(type=device_arg, metavar=DEVICE_METAVAR)
    elif tp in (int, float, str):
        kw.update(type=tp, metavar=f.name.upper())
    else:
        raise TypeError(f"{cls.__name__}.{f.name}: unsupported type {tp!r} for a CLI option")
    if optional:
        base = kw["type"]

        def or_none(s: str, base=base):
            return None if s.lower() == "none" else base(s)

        # argparse names the type in its error ("invalid <lambda> value" for a lambda)
        or_none.__name__ = {int: "whole number", float: "number"}.get(base, base.__name__) + " (or none)"
        kw["type"] = or_none
    return kw


def _cli_fields(cls: type, exclude: tuple[str, ...]) -> list[tuple[dataclasses.Field, Any, bool]]:
    hints = typing.get_type_hints(cls)
    return [(f, *_unwrap_optional(hints[f.name])) for f in dataclasses.fields(cls) if f.init and f.name not in exclude]


def _with_default(help_text: str, default: Any) -> str:
    if default in (None, "", dataclasses.MISSING):  # "(default: None)" tells a reader nothing
        return help_text
    return f"{help_text} (default: {default})" if help_text else f"default: {default}"


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: tuple[str, ...] = (),
    prefix: str = "",
    brief: tuple[str, ...] | None = None,
) -> None:
    """Add one ``--option`` per field of dataclass ``cls`` (defaults left as ``SUPPRESS``).

    ``brief``: the fields ``--help`` shows (None: all); the others only ``--help-all``.

    Options not given on the command line are absent from the namespace, so the dataclass
    default applies (and a resumed run can tell "given" from "defaulted"). With ``prefix``
    (e.g. ``"g."``) the options are ``--g.NAME`` and land in the namespace as ``"g.NAME"``.
    """
    docs = field_docs(cls)
    for f, tp, optional in _cli_fields(cls, exclude):
        kw = _argument_kwargs(cls, f, tp, optional, _with_default(docs.get(f.name, ""), f.default))
        action = parser.add_argument(_option(prefix + f.name), dest=prefix + f.name, **kw)
        if brief is not None and f.name not in brief:
            hide_in_short_help(action)


def hide_in_short_help(action: argparse.Action) -> None:
    """Leave ``action`` out of ``--help``; ``--help-all`` (:class:`HelpAll`) shows it."""
    action.full_help = action.help  # type: ignore[attr-defined]
    action.help = argparse.SUPPRESS


class HelpAll(argparse.Action):
    """``--help-all``: the help with every option, also those :func:`hide_in_short_help` left out."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kw: Any):
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS,
                         help=kw.get("help", "show every option (--help shows the common ones) and exit"))

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        for action in parser._actions:
            if hasattr(action, "full_help"):
                action.help = action.full_help
        parser.print_help()
        parser.exit()


def add_union_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    classes: dict[str, type],
    *,
    prefix: str,
    exclude: tuple[str, ...] = (),
    hidden: bool = False,
) -> None:
    """``--PREFIX.NAME`` for every field of any of ``classes`` (``{owner name: dataclass}``, e.g.
    one config per registered model); a field several of them share is one option whose help
    names each owner's default. Which fields apply is checked later, by the chosen owner's class.
    ``hidden``: shown by ``--help-all`` only."""
    seen: dict[str, list[tuple[str, type, dataclasses.Field, Any, bool]]] = {}
    for owner, cls in classes.items():
        for f, tp, optional in _cli_fields(cls, exclude):
            seen.setdefault(f.name, []).append((owner, cls, f, tp, optional))
    for name, owners in seen.items():
        _, cls, f, tp, optional = owners[0]
        clash = [o for o, _, _, t, _ in owners if t != tp]
        if clash:
            raise TypeError(f"option {prefix}{name}: its type differs between {owners[0][0]} and {', '.join(clash)}")
        doc = field_docs(cls).get(name, "")
        where = "; ".join(f"{o}" + (f": default {g.default}" if g.default not in (None, "") else "")
                          for o, _, g, _, _ in owners)
        kw = _argument_kwargs(cls, f, tp, optional, f"{doc} [{where}]")
        action = parser.add_argument(_option(prefix + name), dest=prefix + name, **kw)
        if hidden:
            hide_in_short_help(action)


def prefixed_fields(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """``{"ngf": 8}`` for ``--g.ngf 8`` given with ``prefix="g."``."""
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix)}


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
