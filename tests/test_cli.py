"""The command line: every subcommand registers, --help works, errors are messages."""

import subprocess
import sys

import pytest

from facegan.cli import COMMANDS, build_parser, main


def test_every_command_has_help(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert name in capsys.readouterr().out


def test_python_dash_m_matches_console_entry():
    out = subprocess.run(
        [sys.executable, "-m", "facegan", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in COMMANDS:
        assert name in out


def test_unknown_command_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_usage_lines_show_what_is_required(capsys):
    """The first line of each command's help names its required inputs, unbracketed."""
    required = {"prepare": "-o OUT.npy", "train": "--data CACHE.npy --out RUN", "sample": "-o OUT_DIR",
                "export": "-o OUT.pt", "stats": "-o OUT.npz", "fid": "fid A B", "pack": "-o STUDENT_NUMBER.tar.gz",
                "grade": "--ref REF.npz -o RESULTS_DIR", "run": "--data PHOTOS --out RUN"}
    for name, text in required.items():
        with pytest.raises(SystemExit):
            main([name, "--help"])
        usage = capsys.readouterr().out.split("\n\n")[0]
        assert text in usage and f"[{text}" not in usage, name
