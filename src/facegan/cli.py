"""The ``facegan`` command: one argparse parser, one module per subcommand.

Each module in :mod:`facegan.commands` exposes ``register(subparsers)`` that adds its parser and
sets ``func`` to a handler taking the parsed namespace. Handlers only parse and call the library;
heavy imports (torch, PIL...) happen inside them so that ``facegan --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from facegan import __version__
from facegan.errors import FaceganError

#: Subcommands in the order of the data path; each is ``facegan.commands.<name>``.
COMMANDS: tuple[str, ...] = ("prepare", "train", "sample", "export", "stats", "fid", "pack", "grade", "run", "cnn")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser. A subcommand module may define ``add_late_arguments(parser)`` for
    options that are costly to list (they import torch); they are added only for ``command``,
    the subcommand being parsed, so ``facegan --help`` stays instant."""
    parser = argparse.ArgumentParser(
        prog="facegan",
        description=(
            "Faces with GANs on CelebA 64x64: prepare -> train -> sample -> fid -> pack (-> grade, for staff). "
            "Run 'facegan COMMAND --help' for the options of each step."
        ),
    )
    parser.add_argument("--version", action="version", version=f"facegan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"facegan.commands.{name}")
        module.register(sub)
        if name == command and hasattr(module, "add_late_arguments"):
            module.add_late_arguments(sub.choices[name])
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is one), if any."""
    return next((a for a in argv if a in COMMANDS), None)


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but a mistyped command or option is answered by the command's
    own usage with the nearest spellings ("did you mean --minutes?"), not the top-level usage."""
    import difflib

    first = next((a for a in argv if not a.startswith("-")), None)
    if first is not None and first not in COMMANDS and not any(a in ("-h", "--help", "--version") for a in argv):
        close = difflib.get_close_matches(first, COMMANDS, n=2)
        parser.error(f"unknown command {first!r}" + (f"; did you mean {' or '.join(close)}?" if close else
                                                     f"; choose from {', '.join(COMMANDS)}"))
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr]
        word = extras[0]
        if word.startswith("-"):
            names = {o.lstrip("-"): o for a in sub._actions for o in a.option_strings}
            close = [names[c] for c in difflib.get_close_matches(word.split("=", 1)[0].lstrip("-"), names, n=2,
                                                                 cutoff=0.7)]
            sub.error(f"unknown option {word}" + (f"; did you mean {' or '.join(close)}?" if close else
                                                  f"; see 'facegan {args.command} --help'"))
        sub.error(f"unexpected argument {word!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from facegan import interrupts

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = _parse(parser, argv)
    try:
        with interrupts.installed():
            result = args.func(args)
    except FaceganError as exc:
        print(f"facegan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facegan: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
