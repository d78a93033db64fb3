"""``facegan cnn``: not built yet (placeholder so the CLI stays whole)."""

from __future__ import annotations

import argparse

from facegan.errors import FaceganError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cnn", help="(not built yet)", description="Not built yet.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise FaceganError("'facegan cnn' is not built yet")
