"""Archives whose headers GNU tar, Python's ``tarfile`` and a naive walker read differently.

Each hostile case is checked here against the real readers: GNU tar (``tar -tvf``) and
``tarfile`` are run on the very bytes, to show that the case *is* read two ways, and facegan must
refuse it (``pack --verify``: exit 2, the archive named, one problem line). Archives that every
reader reads the same way (including one written by GNU tar itself in pax format) must come out
of facegan with the same names as from GNU tar and ``tarfile``.
"""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile

import numpy as np
import pytest

from facegan.cli import main
from facegan.safetar import ArchiveError, iter_tar

TAR = shutil.which("tar") or "/usr/bin/tar"
N = 4  # images per archive: the cases are about headers, not counts


def _png(i: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), i * 40, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _ustar(name: str, size: int, type_=tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mtime = size, type_, 946684800
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _pax(records: dict[str, str], type_=tarfile.XHDTYPE) -> bytes:
    """A pax extended header (type ``x`` or ``g``) carrying ``records``, with its data."""
    return tarfile.TarInfo._create_pax_generic_header(records, type_, "utf-8")


def _gnu_long(name: str) -> bytes:
    return tarfile.TarInfo._create_gnu_long_header(name, tarfile.GNUTYPE_LONGNAME, "utf-8", "strict")


def _member(name: str, data: bytes, before: bytes = b"") -> bytes:
    return before + _ustar(name, len(data)) + data + b"\0" * (-len(data) % 512)


def _write(path, *blocks: bytes):
    raw = b"".join(blocks) + b"\0" * 1024
    path.write_bytes(gzip.compress(raw, mtime=0))
    return path


def _gnu_names(path) -> list[str]:
    out = subprocess.run([TAR, "-tvf", str(path)], capture_output=True, text=True, check=False).stdout
    return [line.split(None, 5)[5] for line in out.splitlines()]


def _tarfile_names(path) -> list[str]:
    with tarfile.open(path) as tf:
        return tf.getnames()


def _facegan_names(path) -> list[str]:
    with open(path, "rb") as f:
        return [e.name for e in iter_tar(f, str(path))]


def _good(i: int) -> bytes:
    return _member(f"20250001/{i:04d}.png", _png(i))


def _verify_refuses(path, capsys, reason: str) -> None:
    assert main(["pack", "--verify", str(path), "--count", str(N)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and reason in err and "Traceback" not in err


def test_gnu_tar_is_there():
    assert subprocess.run([TAR, "--version"], capture_output=True, text=True).stdout.startswith("tar (GNU tar)")


@pytest.mark.parametrize("target", ["20250001/0000.png", "../../evil.png"])
def test_a_global_path_header_is_refused(tmp_path, capsys, target):
    path = _write(tmp_path / "20250001.tar.gz", _pax({"path": target}, tarfile.XGLTYPE), *map(_good, range(N)))
    # What the extractors see: every member renamed to the global path (a traversal for '../')
    assert _tarfile_names(path) == [target] * N
    assert _gnu_names(path) == [target] * N
    with pytest.raises(ArchiveError, match="global pax header with the key path"):
        _facegan_names(path)
    _verify_refuses(path, capsys, "global pax header")


def test_a_pax_path_and_a_gnu_long_name_on_one_member_are_refused(tmp_path, capsys):
    blocks = [_member(f"20250001/{i:04d}.png", _png(i),
                      before=_pax({"path": f"20250001/{i:04d}.png"}) + _gnu_long(f"other/{i:04d}.png"))
              for i in range(N)]
    path = _write(tmp_path / "20250001.tar.gz", *blocks)
    want = [f"20250001/{i:04d}.png" for i in range(N)]
    assert _tarfile_names(path) == want and _gnu_names(path) == want  # both take the pax path...
    with pytest.raises(ArchiveError, match="a pax header and a GNU long name for one member"):
        _facegan_names(path)  # ...a walker taking the last name would see other/...
    _verify_refuses(path, capsys, "a pax header and a GNU long name")
    # the other order (long name first): tarfile and GNU tar disagree with each other; refused too
    flipped = _write(tmp_path / "flipped.tar.gz", _member("x.png", _png(0), before=_gnu_long("a.png") + _pax({"path": "b.png"})))
    assert _tarfile_names(flipped) == ["a.png"] and _gnu_names(flipped) == ["b.png"]  # they disagree
    with pytest.raises(ArchiveError, match="a pax header and a GNU long name"):
        _facegan_names(flipped)


@pytest.mark.parametrize("records, reason", [
    ({"hdrcharset": "BINARY"}, "pax header with the key hdrcharset"),
    ({"VENDOR.path": "x.png"}, "pax header with the key VENDOR.path"),
], ids=["hdrcharset", "vendor-key"])
def test_pax_keys_outside_the_allow_list_are_refused(tmp_path, capsys, records, reason):
    path = _write(tmp_path / "20250001.tar.gz", _member("20250001/0000.png", _png(0), before=_pax(records)),
                  *map(_good, range(1, N)))
    assert len(_tarfile_names(path)) == N == len(_gnu_names(path))  # readable, but not ours to guess
    _verify_refuses(path, capsys, reason)


def test_two_pax_headers_a_repeated_key_or_a_dangling_header_are_refused(tmp_path):
    two = _write(tmp_path / "two.tar.gz", _member("c.png", _png(0), before=_pax({"path": "a.png"}) + _pax({"path": "b.png"})))
    # The readers disagree with each other here: tarfile keeps the first, GNU tar the second.
    assert _tarfile_names(two) == ["a.png"] and _gnu_names(two) == ["b.png"]
    with pytest.raises(ArchiveError, match="two pax extended headers for one member"):
        _facegan_names(two)
    rec = b"14 path=a.png\n14 path=b.png\n"
    hdr = _ustar("././@PaxHeader", len(rec), tarfile.XHDTYPE) + rec + b"\0" * (-len(rec) % 512)
    dup = _write(tmp_path / "dup.tar.gz", _member("c.png", _png(0), before=hdr))
    with pytest.raises(ArchiveError, match="the pax key path twice"):
        _facegan_names(dup)
    dangling = _write(tmp_path / "dangling.tar.gz", _good(0), _pax({"path": "x.png"}))
    with pytest.raises(ArchiveError, match="extended header with no member after it"):
        _facegan_names(dangling)
    solaris = _write(tmp_path / "solaris.tar.gz", _member("c.png", _png(0), before=_pax({"path": "a.png"}, tarfile.SOLARIS_XHDTYPE)))
    with pytest.raises(ArchiveError, match="Solaris extended header"):
        _facegan_names(solaris)


def test_what_tools_write_reads_the_same_everywhere(tmp_path):
    """GNU tar's own pax output (atime/ctime/mtime keys, long names) and git archive's global
    comment are accepted, with the names GNU tar and tarfile see."""
    src = tmp_path / "src" / ("d" * 120)
    src.mkdir(parents=True)
    for i in range(3):
        (src / f"{'n' * 110}{i}.png").write_bytes(_png(i))
    gnu = tmp_path / "gnu.tar.gz"
    subprocess.run([TAR, "--format=pax", "--sort=name", "-czf", str(gnu), "-C", str(tmp_path / "src"), "."],
                   check=True)
    assert _facegan_names(gnu) == _tarfile_names(gnu)
    assert [n.rstrip("/") for n in _gnu_names(gnu)] == [n.rstrip("/") for n in _tarfile_names(gnu)]
    git = _write(tmp_path / "git.tar.gz", _pax({"comment": "0" * 40}, tarfile.XGLTYPE), *map(_good, range(N)))
    want = [f"20250001/{i:04d}.png" for i in range(N)]
    assert _facegan_names(git) == _tarfile_names(git) == _gnu_names(git) == want
    assert main(["pack", "--verify", str(git), "--count", str(N)]) == 0


def test_macos_extended_attributes_are_accepted(tmp_path):
    """bsdtar on macOS writes quarantine attributes and creation times as pax keys: no reader takes
    a name or a size from them."""
    keys = {"SCHILY.xattr.com.apple.quarantine": "0081;5f1e;Safari;", "LIBARCHIVE.creationtime": "1700000000",
            "mtime": "1700000000.5"}
    path = _write(tmp_path / "20250001.tar.gz", *[_member(f"20250001/{i:04d}.png", _png(i), before=_pax(keys))
                                                  for i in range(N)])
    want = [f"20250001/{i:04d}.png" for i in range(N)]
    assert _facegan_names(path) == _tarfile_names(path) == _gnu_names(path) == want
