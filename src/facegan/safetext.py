"""Text that came from an untrusted source (a member name, an archive's file name) made safe to show.

A student's archive may name its members with bytes that are not UTF-8, with control and escape
characters (a terminal obeys ``ESC [ 2 J``), with bidirectional overrides that reorder what is
read, or with 60,000 characters. :func:`shown` turns any such text into one printable line:
every character that is not printable is written as a Python-style escape (``\\x1b``,
``\\u202e``), an undecodable byte kept by ``surrogateescape`` as ``\\xff``, a backslash as
``\\\\`` (so the escaped form is unambiguous), and the whole is cut to ``limit`` characters.
The result is valid Unicode, so it can be written to UTF-8 files, JSON, CSV and HTML (which
escape their own syntax on top) and printed on any terminal.
"""

from __future__ import annotations

import os

#: Characters shown of one name; enough for ``20251234/0999.png`` many times over.
NAME_LIMIT = 120


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def shown(text: str | bytes | os.PathLike, limit: int = NAME_LIMIT) -> str:
    """``text`` as one printable line of at most ``limit`` characters (see the module docstring).

    Bytes are decoded as UTF-8 with ``surrogateescape``; a cut name ends in ``…``.
    """
    if isinstance(text, os.PathLike):
        text = os.fspath(text)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    pieces: list[str] = []
    length = 0
    for ch in text:
        piece = "\\\\" if ch == "\\" else ch if ch.isprintable() else _escape(ch)
        pieces.append(piece)
        length += len(piece)
        if length > limit:  # stop early: a 60,000-character name costs no more than a short one
            break
    else:
        return "".join(pieces)
    while length > limit - 1:  # room for the ellipsis, never cutting an escape in half
        length -= len(pieces.pop())
    return "".join(pieces) + "…"
