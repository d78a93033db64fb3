"""Dataclass configs become command-line options with their docstrings as help."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

import pytest

from facegan.config import (
    add_dataclass_arguments,
    dataclass_from_args,
    field_docs,
    from_dict,
    given_fields,
    to_dict,
)


@dataclass
class Toy:
    lr: float = 2e-4
    """Adam learning rate."""
    batch: int = 128
    """Images per step."""
    norm: Literal["batch", "none"] = "batch"
    """Normalization in D."""
    ema: bool = True
    """Keep an EMA of G."""
    minutes: float | None = None
    """Stop after this many minutes."""

    def __post_init__(self):
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")


def parse(argv):
    p = argparse.ArgumentParser()
    add_dataclass_arguments(p, Toy)
    return p, p.parse_args(argv)


def test_docstrings_are_read_per_field():
    docs = field_docs(Toy)
    assert docs["lr"] == "Adam learning rate."
    assert docs["minutes"] == "Stop after this many minutes."


def test_defaults_come_from_the_dataclass():
    _, args = parse([])
    assert dataclass_from_args(Toy, args) == Toy()
    assert given_fields(Toy, args) == {}


def test_options_parse_every_supported_type():
    _, args = parse(["--lr", "0.001", "--batch", "64", "--norm", "none", "--no-ema", "--minutes", "5"])
    cfg = dataclass_from_args(Toy, args)
    assert cfg == Toy(lr=0.001, batch=64, norm="none", ema=False, minutes=5.0)
    assert set(given_fields(Toy, args)) == {"lr", "batch", "norm", "ema", "minutes"}


def test_optional_accepts_none_and_choices_are_enforced(capsys):
    _, args = parse(["--minutes", "none"])
    assert dataclass_from_args(Toy, args).minutes is None
    with pytest.raises(SystemExit):
        parse(["--norm", "layer"])
    assert "invalid choice" in capsys.readouterr().err


def test_help_shows_docstring_and_default():
    p, _ = parse([])
    text = p.format_help()
    assert "Adam learning rate. (default: 0.0002)" in " ".join(text.split())


def test_validation_runs_and_dict_roundtrip_ignores_unknown_keys():
    _, args = parse(["--batch", "0"])
    with pytest.raises(ValueError, match="batch must be >= 1"):
        dataclass_from_args(Toy, args)
    cfg = Toy(lr=0.5)
    assert from_dict(Toy, {**to_dict(cfg), "from_a_newer_version": 1}) == cfg


def test_help_reads_the_names_from_their_tables_only_when_shown():
    """The loss and augmentation names are written once, in their tables; the help lists them
    from there, and building the parser imports neither table (nor torch)."""
    import subprocess
    import sys

    from facegan.config import expand_tables

    code = ("import sys; from facegan.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'facegan.train.losses', 'facegan.train.augment') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"

    from facegan.train.augment import FAMILIES
    from facegan.train.config import TrainConfig
    from facegan.train.losses import LOSSES

    docs = field_docs(TrainConfig)
    assert f"one of {', '.join(LOSSES)} " in expand_tables(docs["loss"])
    assert f"comma-separated of {', '.join(FAMILIES)}, or none" in expand_tables(docs["augment"])
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, TrainConfig, exclude=("g", "d", "method_options"))
    assert ", ".join(LOSSES) in " ".join(parser.format_help().split())
