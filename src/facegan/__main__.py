"""``python -m facegan`` is the same as the ``facegan`` command."""

from facegan.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
