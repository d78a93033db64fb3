"""Thin command-line wrappers, one module per ``facegan`` subcommand (see :mod:`facegan.cli`)."""
