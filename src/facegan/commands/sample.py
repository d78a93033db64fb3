"""``facegan sample``: not built yet (placeholder so the CLI stays whole)."""

from __future__ import annotations

import argparse

from facegan.errors import FaceganError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="(not built yet)", description="Not built yet.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise FaceganError("'facegan sample' is not built yet")
