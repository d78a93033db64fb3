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


def _help(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([*argv])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_train_help_is_short_and_readable(capsys, monkeypatch):
    """`train --help`: the common options in lines of at most 100 columns, no Python None, no
    "recorded, already applied"; --help-all lists every option, the networks' too."""
    monkeypatch.setenv("COLUMNS", "100")
    short = _help(capsys, "train", "--help")
    lines = short.splitlines()
    assert len(lines) <= 70 and max(map(len, lines)) <= 100, (len(lines), max(lines, key=len))
    assert "None" not in short and "recorded" not in short and "already applied" not in short
    assert "--minutes" in short and "--preset" in short and "--help-all" in short
    assert "--beta2-d" not in short and "--g.ngf NGF" not in short
    full = _help(capsys, "train", "--help-all")
    assert "--beta2-d" in full and "--g.ngf NGF" in full and "--fid-share" in full and "None" not in full
    assert max(map(len, full.splitlines())) <= 100
    assert "None" not in _help(capsys, "run", "--help")


def test_a_typo_in_an_option_gets_did_you_mean_with_the_commands_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", "x.npy", "--out", "r", "--minuts", "2"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "facegan train: error: unknown option --minuts; did you mean --minutes?" in err
    assert err.startswith("usage: facegan train")
    with pytest.raises(SystemExit):
        main(["trian", "--data", "x.npy"])
    assert "unknown command 'trian'; did you mean train?" in capsys.readouterr().err


def test_device_cuda_n_is_accepted_and_sample_run_share_the_count_spelling(capsys):
    """--device cuda:0 parses everywhere (pytorch-fid takes it); -n/--num/--n in sample and run."""
    for argv in (["train", "--data", "x.npy", "--out", "r", "--kimg", "1"], ["run", "--out", "r"],
                 ["sample", "ck.pt", "-o", "s"], ["fid", "a", "b"], ["stats", "a", "-o", "r.npz"],
                 ["grade", "s", "--ref", "r.npz", "-o", "res"]):
        args = build_parser(argv[0]).parse_args([*argv, "--device", "cuda:0"])
        assert args.device == "cuda:0", argv
    with pytest.raises(SystemExit):
        build_parser("train").parse_args(["train", "--device", "gpu0"])
    assert "expected auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    for spelling in ("-n", "--num", "--n"):
        assert build_parser("sample").parse_args(["sample", "ck.pt", "-o", "s", spelling, "7"]).num == 7
        assert build_parser("run").parse_args(["run", "--out", "r", spelling, "7"]).n == 7
