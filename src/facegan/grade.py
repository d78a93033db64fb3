"""Grading many submissions: each ``<student>.tar.gz`` checked, scored by FID, ranked, published.

For course staff. Every archive goes through the checks ``facegan pack`` runs (exactly
``count`` decodable ``size``x``size`` RGB images, no duplicates, one folder or the root) and
through limits a hostile archive cannot get around: nothing is extracted to disk, unsafe paths,
links and non-image members are refused, member sizes and counts are bounded from the tar
headers, and an image's canvas size is checked before its pixels are decoded. An archive that
fails is *rejected* with its problems listed; it never stops the others.

Accepted submissions are scored against one reference (``.npz`` statistics, e.g. from
``facegan stats``) with one Inception network, so every student gets the same protocol. Images
shared between two submissions (identical pixels) are flagged on both.

Results go to ``out/``: ``scores.json`` (everything), ``scores.csv`` (one row per student),
``index.html`` (the ranked table with a sample grid per student, under ``grids/``). Each
archive's result is cached under ``out/cache/`` by the archive's hash, the reference's hash,
the weights and the protocol, so a rerun after adding late submissions (or after Ctrl-C)
scores only what is new.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from facegan.errors import FaceganError
from facegan.fileio import atomic_write_text, file_digest
from facegan.pack import DEFAULT_COUNT, DEFAULT_SIZE, student_archive_name, verify

#: An archive larger than this on disk is rejected unread (1,000 images of at most 1 MB each).
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
_GRID_IMAGES = 64


@dataclass
class GradeResult:
    """One submission's outcome."""

    student: str
    archive: str
    sha256: str
    status: str
    """'scored', or 'rejected' (see ``problems``)."""
    n: int = 0
    fid: float | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    grid: str | None = None
    """The sample grid's path relative to the results folder."""
    pixel_hashes: list[str] = field(default_factory=list, repr=False)
    """Short hashes of each image's pixels (to find images shared between submissions)."""


def find_archives(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The submissions named by ``paths``: archives, or folders of ``*.tar.gz``/``*.tgz``."""
    found: list[Path] = []
    missing: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.iterdir() if q.is_file() and q.name.endswith((".tar.gz", ".tgz")))
        elif p.is_file():
            found.append(p)
        else:
            missing.append(str(p))
    if missing:
        raise FaceganError(f"no such submission file or folder: {', '.join(missing)}")
    if not found:
        raise FaceganError("no submissions found (give .tar.gz files or folders holding them)")
    return list(dict.fromkeys(found))  # a file named twice is graded once


def read_submission(archive: Path, count: int = DEFAULT_COUNT,
                    size: int = DEFAULT_SIZE) -> tuple[np.ndarray, list[str], list[str]]:
    """The images of an archive that passes ``facegan pack``'s checks, read once: uint8
    (count, size, size, 3) in member-name order, short hashes of their pixels, and warnings.
    Raises FaceganError listing the problems otherwise."""
    nbytes = archive.stat().st_size
    if nbytes > MAX_ARCHIVE_BYTES:
        raise FaceganError(f"{archive}: {nbytes:,} bytes, more than a submission can need ({MAX_ARCHIVE_BYTES:,})")
    kept: dict[str, tuple[np.ndarray, str]] = {}
    report = verify(archive, count, size, keep=kept)  # every check, every problem listed
    names = sorted(kept)
    return np.stack([kept[n][0] for n in names]), [kept[n][1][:32] for n in names], report.warnings


class Grader:
    """Scores submissions against one reference with one scorer, caching per archive.

    Args:
        ref: the reference statistics file (``.npz``).
        out: the results folder.
        make_scorer: returns the :class:`~facegan.fid.features.FIDScorer` (called once, lazily).
        count, size: the protocol (the brief: 1,000 images of 64x64).
        floor: the real-data floor at ``count`` images, shown beside the scores (default: the
            one recorded in ``ref``, if measured at ``count``).
    """

    def __init__(self, ref: str | os.PathLike, out: str | os.PathLike, make_scorer: Callable[[], object],
                 count: int = DEFAULT_COUNT, size: int = DEFAULT_SIZE, floor: float | None = None):
        from facegan.fid.stats import Stats

        self.ref_path = Path(ref)
        self.ref = Stats.load(self.ref_path)
        self.ref_sha256 = file_digest(self.ref_path)
        self.out = Path(out)
        self.count, self.size = count, size
        self.floor = floor if floor is not None else self.ref.floor_at(count)
        self._make_scorer = make_scorer
        self._scorer = None

    @property
    def scorer(self):
        if self._scorer is None:
            self._scorer = self._make_scorer()
            mine, theirs = self._scorer.weights_sha256, self.ref.weights_sha256
            if theirs and mine != theirs:
                raise FaceganError(
                    f"{self.ref_path}: made with other Inception weights (sha256 {theirs[:12]}…) than "
                    f"this scorer's ({mine[:12]}…): the FIDs would not be comparable; remake it with 'facegan stats'"
                )
        return self._scorer

    def _cache_path(self, sha256: str) -> Path:
        return self.out / "cache" / f"{sha256}.json"

    def _protocol(self) -> dict:
        return {"ref_sha256": self.ref_sha256, "count": self.count, "size": self.size}

    def grade_one(self, archive: Path) -> GradeResult:
        """Check and score one archive (or reuse its cached result); never raises for bad archives."""
        from facegan.fid.distance import frechet_distance
        from facegan.grids import save_grid

        try:
            student, warning = student_archive_name(archive)
        except FaceganError:
            student, warning = archive.name, f"{archive.name}: not named <student number>.tar.gz"
        sha = file_digest(archive)
        cached = self._cache_path(sha)
        if cached.is_file():
            try:
                saved = json.loads(cached.read_text())
                if saved.get("protocol") == self._protocol() and saved.get("weights_sha256") == self.scorer.weights_sha256:
                    return GradeResult(**{**saved["result"], "archive": str(archive), "student": student})
            except (json.JSONDecodeError, TypeError, KeyError):
                pass  # a torn cache file: score again
        result = GradeResult(student, str(archive), sha, "rejected", warnings=[warning] if warning else [])
        try:
            images, result.pixel_hashes, warnings = read_submission(archive, self.count, self.size)
        except FaceganError as exc:
            result.problems = [line.strip() for line in str(exc).splitlines() if line.strip()]
        else:
            result.warnings += warnings
            st = self.scorer.statistics(images, source=str(archive))
            result.fid = float(frechet_distance(st.mu, st.sigma, self.ref.mu, self.ref.sigma))
            result.n, result.status = st.n, "scored"
            grid = Path("grids") / f"{sha[:16]}.png"  # named by content: no student text in paths
            (self.out / "grids").mkdir(parents=True, exist_ok=True)
            save_grid(images[:_GRID_IMAGES], self.out / grid)
            result.grid = grid.as_posix()
        cached.parent.mkdir(parents=True, exist_ok=True)
        record = {"protocol": self._protocol(), "weights_sha256": self.scorer.weights_sha256, "result": asdict(result)}
        atomic_write_text(cached, json.dumps(record))
        return result


def flag_shared_images(results: list[GradeResult]) -> None:
    """Warn on every pair of submissions holding images with identical pixels, and on repeated
    student numbers."""
    owners: dict[str, set[int]] = defaultdict(set)
    for i, r in enumerate(results):
        for h in r.pixel_hashes:
            owners[h].add(i)
    shared: dict[tuple[int, int], int] = defaultdict(int)
    for idx in owners.values():
        for a in idx:
            for b in idx:
                if a != b:
                    shared[a, b] += 1
    for (a, b), k in sorted(shared.items()):
        results[a].warnings.append(f"{k} image(s) identical to ones in {results[b].student} ({results[b].archive})")
    by_student: dict[str, list[GradeResult]] = defaultdict(list)
    for r in results:
        by_student[r.student].append(r)
    for student, rs in by_student.items():
        if len(rs) > 1:
            for r in rs:
                r.warnings.append(f"student number {student} has {len(rs)} archives: {', '.join(x.archive for x in rs)}")


def ranked(results: list[GradeResult]) -> list[GradeResult]:
    """Scored submissions by FID (lowest first), then the rejected ones by student."""
    return sorted(results, key=lambda r: (r.status != "scored", r.fid if r.fid is not None else 0.0, r.student))


def write_results(grader: Grader, rows: list[GradeResult]) -> dict[str, Path]:
    """``scores.json``, ``scores.csv`` and ``index.html`` of ``rows`` (already :func:`ranked`)
    in the results folder; their paths."""
    from facegan import __version__

    out = grader.out
    out.mkdir(parents=True, exist_ok=True)
    floor = grader.floor
    header = {
        "reference": str(grader.ref_path), "reference_sha256": grader.ref_sha256, "reference_n": grader.ref.n,
        "samples_per_submission": grader.count, "image_size": grader.size,
        "real_data_floor": floor, "weights_sha256": grader.scorer.weights_sha256 if any(r.status == "scored" for r in rows) else None,
        "facegan": __version__, "graded_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    records = [{k: v for k, v in asdict(r).items() if k != "pixel_hashes"} for r in rows]
    paths = {"json": out / "scores.json", "csv": out / "scores.csv", "html": out / "index.html"}
    atomic_write_text(paths["json"], json.dumps({**header, "submissions": records}, indent=2) + "\n")

    table = io.StringIO(newline="")
    w = csv.writer(table)
    w.writerow(["rank", "student", "fid", "n", "status", "problems", "warnings", "archive", "sha256"])
    for rank, r in enumerate(rows, 1):
        w.writerow([rank if r.status == "scored" else "", _cell(r.student), f"{r.fid:.4f}" if r.fid is not None else "",
                    r.n, r.status, _cell(" | ".join(r.problems)), _cell(" | ".join(r.warnings)), _cell(r.archive), r.sha256])
    atomic_write_text(paths["csv"], table.getvalue())
    atomic_write_text(paths["html"], _html(header, rows))
    return paths


def _cell(text: str) -> str:
    """A CSV cell that a spreadsheet shows as text: a leading = + - @ would make it a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _html(header: dict, rows: list[GradeResult]) -> str:
    """The leaderboard page; every text that came from a submission is escaped."""
    e = html.escape
    floor = header["real_data_floor"]
    lines = [
        "<!doctype html><html><head><meta charset='utf-8'><title>facegan grades</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
        ".rejected{background:#fee}.warn{color:#a60}img{image-rendering:pixelated}</style></head><body>",
        "<h1>FID leaderboard</h1>",
        f"<p>FID of {header['samples_per_submission']} images per submission ({header['image_size']}x{header['image_size']}) "
        f"against <code>{e(header['reference'])}</code>"
        + (f" ({header['reference_n']} images)" if header["reference_n"] else "") + "; lower is better. "
        + (f"Real photos score {floor:.2f} against this reference at this sample size (the floor). " if floor is not None else "")
        + f"Graded {e(header['graded_at'])} by facegan {e(header['facegan'])}.</p>",
        "<table><tr><th>rank</th><th>student</th><th>FID</th><th>images</th><th>samples</th><th>notes</th></tr>",
    ]
    for rank, r in enumerate(rows, 1):
        scored = r.status == "scored"
        notes = "".join(f"<div>{e(p)}</div>" for p in r.problems)
        notes += "".join(f"<div class='warn'>{e(w)}</div>" for w in r.warnings)
        grid = f"<img src='{e(r.grid)}' width='256' alt='samples'>" if r.grid else ""
        lines.append(
            f"<tr class='{'' if scored else 'rejected'}'><td>{rank if scored else ''}</td><td>{e(r.student)}</td>"
            f"<td>{f'{r.fid:.2f}' if r.fid is not None else e(r.status)}</td><td>{r.n}</td><td>{grid}</td><td>{notes}</td></tr>"
        )
    lines.append("</table></body></html>\n")
    return "\n".join(lines)


def grade(archives: list[Path], grader: Grader, progress: bool = True) -> list[GradeResult]:
    """Grade ``archives`` one by one (cached results reused), flag shared images, write the results."""
    from tqdm import tqdm

    results = []
    for archive in tqdm(archives, desc="grade", unit="archive", disable=None if progress else True):  # None: off when not a terminal
        results.append(grader.grade_one(archive))
    flag_shared_images(results)
    rows = ranked(results)
    write_results(grader, rows)
    return rows
