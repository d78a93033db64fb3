"""Grading many submissions: every entry of the submissions folder checked, scored by FID, ranked.

For course staff. Every entry gets a row: *scored*, *rejected* with every problem listed,
*ignored* with the reason (a folder, a FIFO, a dangling link, a hidden or non-archive file), or
— for a failure on the grader's side, never cached — *error*. ``<student>.tar.gz`` (also
``.tgz``, any case, with a warning) goes through :func:`facegan.pack.check_archive`, the checks
``facegan pack --verify`` runs, with the limits a hostile archive cannot get around (see
:mod:`facegan.pack` and :mod:`facegan.safetar`); a ``.zip`` or plain ``.tar`` is rejected with
the reason. Sizes are checked before anything is hashed or read, and one archive's failure of
any kind is that archive's row, never the run's end.

Accepted submissions are scored against one reference (``.npz`` statistics, checked before
anything is scored) with one Inception network, so every student gets the same protocol. With
a :class:`~facegan.copycheck.CopyIndex` of the training photos, images that are (near-)copies of
them are counted. Images shared between submissions, identical archives and repeated student
numbers are flagged on every row involved.

Each archive's result is cached under ``out/cache/`` keyed by its file name and bytes (so two
students who hand in the same bytes keep their own names and messages, and are still flagged
as identical), the reference, the weights, the copy index and the protocol: a rerun after late
submissions (or after Ctrl-C) scores only what is new.

The Inception pass (nearly all of the time on a CPU: ~3 minutes per 1,000-image archive on one
core) runs once per distinct *image set*: the key is a hash of the sorted pixel hashes the checks
compute anyway, and the images go through the network in that order, so the score is a function
of the set alone — whichever archive holding it comes first, in whichever run or shard. Pixels,
not member bytes: FID sees only pixels, and the same images re-saved (another PNG compression
level, other file names, a re-packed archive) are the same set. Such duplicates are still
flagged on every row (:func:`flag_shared`). :mod:`facegan.gradeshards` splits a class over
processes or machines and merges the parts. :func:`grade` returns the rows and :func:`run_info` the
run's settings; the command writes them out (:mod:`facegan.leaderboard`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import stat
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

import numpy as np

from facegan.errors import FaceganError
from facegan.fid.features import FEATURE_DIMS
from facegan.fileio import atomic_write_text
from facegan.graderows import GradeResult  # re-exported: the rows grade() returns
from facegan.images import open_regular
from facegan.pack import (DEFAULT_COUNT, DEFAULT_SIZE, MAX_ARCHIVE_BYTES, READ_SECONDS, check_archive,
                          is_os_junk)
from facegan.safetext import shown

_GRID_IMAGES = 64
_COPY_EXAMPLES = 5
_PROTOCOL_VERSION = 2  # results cached by older versions (keyed by bytes only) are not reused
_SUBMISSION = (".tar.gz", ".tgz")
_OTHER_ARCHIVES = (".zip", ".tar", ".tar.bz2", ".tar.xz", ".tbz2", ".txz", ".gz", ".7z", ".rar")


@dataclass
class Entry:
    """One entry of the submissions: what to do with it and why."""

    path: Path
    action: str
    """'grade', 'reject' or 'ignore'."""
    reason: str = ""
    warning: str = ""

    @property
    def name(self) -> str:
        return shown(self.path.name)

    @property
    def student(self) -> str:
        """The file name without its archive suffix (escaped)."""
        name = self.path.name
        lower = name.lower()
        for suffix in _SUBMISSION + _OTHER_ARCHIVES:
            if lower.endswith(suffix) and len(name) > len(suffix):
                return shown(name[: -len(suffix)])
        return shown(name)


def _sane_cached(r: GradeResult) -> bool:
    """Whether a result read back from the cache has the types grading writes (the cache is
    read back as untrusted: ``fid: "abc"`` would break the ranking)."""
    def number(x, kind=(int, float)):
        return isinstance(x, kind) and not isinstance(x, bool) and math.isfinite(x)

    def texts(x):
        return isinstance(x, list) and all(isinstance(v, str) for v in x)

    return (r.status in ("scored", "rejected", "ignored") and number(r.n, int) and r.n >= 0
            and (r.fid is None or number(r.fid)) and (r.status != "scored" or r.fid is not None)
            and (r.copies is None or number(r.copies, int)) and (r.rank is None or number(r.rank, int))
            and all(isinstance(x, str) for x in (r.student, r.entry, r.archive, r.sha256, r.verdict))
            and (r.grid is None or isinstance(r.grid, str))
            and all(texts(x) for x in (r.copy_examples, r.problems, r.warnings, r.pixel_hashes)))


def classify(path: Path) -> Entry:
    """What to do with ``path``, decided from its name and type without opening it."""
    name = path.name
    if name.startswith("."):
        return Entry(path, "ignore", "a hidden file" + (" (the operating system's)" if is_os_junk(name) else ""))
    try:
        st = os.stat(path)  # follows a link: a link to a submission is graded
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Entry(path, "ignore", "a symbolic link loop")
        if os.path.islink(path):
            return Entry(path, "ignore", "a dangling link (its target does not exist)")
        return Entry(path, "ignore", f"cannot be looked at ({exc.strerror})")
    if stat.S_ISDIR(st.st_mode):
        return Entry(path, "ignore", "a folder (only the archives in a submissions folder are graded, "
                                     "not what its subfolders hold)")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "special")
        return Entry(path, "ignore", f"{kind}, not a regular file")
    lower = name.lower()
    if lower.endswith(_SUBMISSION) and lower not in _SUBMISSION:
        entry = Entry(path, "grade")
        if not (name.endswith(".tar.gz") and entry.student.isdigit()):
            entry.warning = (f"{entry.name}: the brief names the archive <student number>.tar.gz "
                             f"(graded as student '{entry.student}')")
        return entry
    if lower.endswith(_OTHER_ARCHIVES):
        kind = next(s for s in sorted(_OTHER_ARCHIVES, key=len, reverse=True) if lower.endswith(s))
        return Entry(path, "reject", f"a {kind} file, not a .tar.gz: the brief asks for <student number>.tar.gz "
                                     "(make it with 'facegan pack')")
    return Entry(path, "ignore", "not a submission (only <student number>.tar.gz files are graded)")


def list_submissions(paths: Iterable[str | os.PathLike]) -> list[Entry]:
    """Every entry of the folders in ``paths`` (sorted), and the files named; a path that does not
    exist at all is an error, and so is a file named on the command line that cannot be graded
    at all (a FIFO, a device, a dangling link, a file that is no archive): what a folder happens
    to hold is reported as an ignored row, but an argument the grader typed is a mistake to say
    before anything is scored, not a row to overlook in a results page."""
    entries: list[Entry] = []
    missing: list[str] = []
    unusable: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            try:
                names = sorted(os.listdir(p))
            except OSError as exc:
                raise FaceganError(f"{p}: cannot list the submissions folder ({exc.strerror})") from None
            entries += [classify(p / n) for n in names]
        elif os.path.lexists(p):
            entry = classify(p)
            if entry.action == "ignore":
                unusable.append(f"{shown(p)} ({entry.reason})")
            entries.append(entry)
        else:
            missing.append(str(p))
    if missing:
        raise FaceganError(f"no such submission file or folder: {', '.join(missing)}")
    if unusable:
        raise FaceganError(f"cannot grade what was named: {'; '.join(unusable[:5])}"
                           + (f"; and {len(unusable) - 5} more" if len(unusable) > 5 else ""))
    if not entries:
        raise FaceganError("no submissions found (give .tar.gz files or folders holding them)")
    seen: set[str] = set()
    unique = []
    for e in entries:  # a file named twice is graded once
        key = os.path.realpath(e.path) if e.action == "grade" else str(e.path)
        if key not in seen:
            seen.add(key)
            unique.append(e)
    return unique


def _digest(f: IO[bytes]) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 22), b""):
        h.update(block)
    f.seek(0)
    return h.hexdigest()


class Grader:
    """Scores submissions against one reference with one scorer, caching per archive.

    Args:
        ref: the reference statistics file (``.npz``); checked here, before anything is scored.
        out: the results folder.
        make_scorer: returns the :class:`~facegan.fid.features.FIDScorer` (called once, lazily).
        count, size: the protocol (the brief: 1,000 images of 64x64).
        floor: the real-data floor at ``count`` images, shown beside the scores (default: the
            one recorded in ``ref``, if measured at ``count``).
        target: the FID to reach (e.g. 20): adds a pass/fail verdict.
        copy_index: training photos to count copies of (:class:`~facegan.copycheck.CopyIndex`).
        read_seconds: the time one archive may take to read and check.
        dims: the width of the scorer's features (the FID Inception's pool3: 2048).
    """

    def __init__(self, ref: str | os.PathLike, out: str | os.PathLike, make_scorer: Callable[[], object],
                 count: int = DEFAULT_COUNT, size: int = DEFAULT_SIZE, floor: float | None = None, *,
                 target: float | None = None, copy_index=None, read_seconds: float | None = READ_SECONDS,
                 dims: int | None = None):
        self.ref_path = Path(ref)
        self.ref = load_reference(self.ref_path, dims or FEATURE_DIMS)
        from facegan.fileio import file_digest

        self.ref_sha256 = file_digest(self.ref_path)
        self.out = Path(out)
        self.count, self.size = count, size
        self.floor = floor if floor is not None else self.ref.floor_at(count)
        self.target, self.copy_index, self.read_seconds = target, copy_index, read_seconds
        self._make_scorer = make_scorer
        self._scorer = None
        self._sets: dict[str, tuple[float, int]] = {}  # image-set key -> (FID, n), this run's
        self.sets_scored = 0
        """Inception passes run (distinct image sets not found in the cache)."""
        self.sets_reused = 0
        """Scored archives whose image set had been scored already (this run or the cache)."""
        self.progress = False
        """Show a per-archive bar of the images going through the network (set by :func:`grade`)."""

    @property
    def scorer(self):
        """The scorer, made on first use and checked against the reference's weights."""
        if self._scorer is None:
            self._scorer = self._make_scorer()
            mine, theirs = self._scorer.weights_sha256, self.ref.weights_sha256
            if theirs and mine != theirs:
                raise FaceganError(
                    f"{self.ref_path}: made with other Inception weights (sha256 {theirs[:12]}…) than "
                    f"this scorer's ({mine[:12]}…): the FIDs would not be comparable; remake it with 'facegan stats'"
                )
        return self._scorer

    @property
    def weights_sha256(self) -> str | None:
        """The scorer's weights' sha256, or ``None`` while no scorer was needed."""
        return self._scorer.weights_sha256 if self._scorer is not None else None

    def _protocol(self) -> dict:
        return {"version": _PROTOCOL_VERSION, "ref_sha256": self.ref_sha256, "count": self.count, "size": self.size,
                "weights_sha256": self.scorer.weights_sha256,
                "copy_index": self.copy_index.fingerprint if self.copy_index is not None else None}

    def _cache_path(self, entry: Entry, sha256: str) -> Path:
        # keyed by (file name, bytes): the file name is the student, so two students handing in the
        # same bytes each keep their own row
        key = hashlib.sha256(entry.path.name.encode("utf-8", "surrogateescape") + b"\0" + sha256.encode()).hexdigest()
        return self.out / "cache" / f"{key}.json"

    def _cached(self, path: Path) -> GradeResult | None:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("protocol") != self._protocol():
                return None
            result = GradeResult(**saved["result"])
            json.dumps(asdict(result), ensure_ascii=False).encode("utf-8")  # no unprintable leftovers
            return result if _sane_cached(result) else None  # a damaged entry is graded again
        except (OSError, ValueError, TypeError, KeyError, UnicodeError, AttributeError):
            return None  # missing, torn or from another version: grade again

    def grade_one(self, entry: Entry | Path) -> GradeResult:
        """Check and score one entry (or reuse its cached result); never raises for a bad archive."""
        if not isinstance(entry, Entry):
            entry = classify(Path(entry))
        result = GradeResult(entry.student, entry.name, shown(entry.path, 1000),
                             warnings=[entry.warning] if entry.warning else [])
        if entry.action != "grade":
            result.status = "ignored" if entry.action == "ignore" else "rejected"
            result.problems = [entry.reason]
            return result
        try:
            f = open_regular(entry.path)  # not a FIFO or device: refused without blocking
        except FaceganError as exc:
            result.problems = [str(exc).removeprefix(f"{entry.path}: ")]
            return result
        with f:
            try:
                nbytes = os.fstat(f.fileno()).st_size
                if nbytes > MAX_ARCHIVE_BYTES:  # refused from its size: not even hashed
                    result.problems = [f"{nbytes:,} bytes, more than a submission can need ({MAX_ARCHIVE_BYTES:,})"]
                    return result
                result.sha256 = _digest(f)
            except OSError as exc:
                result.problems = [f"cannot be read ({exc.strerror or exc})"]
                return result
            cache = self._cache_path(entry, result.sha256)
            cached = self._cached(cache)
            if cached is not None:
                cached.archive = result.archive  # the folder may have moved
                return cached
            try:
                self._check_and_score(f, entry, result)
            except Exception as exc:  # noqa: BLE001 - one archive's failure must not end the run
                result.status, result.fid, result.n = "error", None, 0
                result.problems = [f"could not be graded ({type(exc).__name__}: {shown(str(exc), 300)}); "
                                   "not cached, so a rerun tries again"]
                return result
        atomic_write_text(cache, json.dumps({"protocol": self._protocol(), "result": asdict(result)}))
        return result

    def _check_and_score(self, f: IO[bytes], entry: Entry, result: GradeResult) -> None:
        from facegan.grids import save_grid

        kept: dict[str, tuple[np.ndarray, str]] = {}
        try:
            check = check_archive(f, self.count, self.size, keep=kept, seconds=self.read_seconds, name=entry.name)
        except Exception as exc:  # noqa: BLE001 - a hostile archive met a reader bug: its rejection
            result.problems = [f"cannot be read safely ({type(exc).__name__}: {shown(str(exc), 300)})"]
            return
        result.warnings += check.warnings
        if not check.ok:
            result.problems = check.problems
            return
        names = sorted(kept)
        images = np.stack([kept[n][0] for n in names])
        result.pixel_hashes = [kept[n][1][:32] for n in names]
        if self.copy_index is not None:
            copies = self.copy_index.find_copies(images)
            result.copies = len(copies)
            result.copy_examples = [
                f"{shown(names[c.image])} ≈ training photo #{c.train}"
                + (" mirrored" if c.flipped else "") + (f", shifted {c.shift}" if c.shift != (0, 0) else "")
                + f" (similarity {c.similarity:.3f})" for c in copies[:_COPY_EXAMPLES]]
            if copies:
                result.warnings.append(f"{len(copies)} image(s) are copies of training photos "
                                       f"(e.g. {result.copy_examples[0]})")
        result.fid, result.n = self._set_score(images, [kept[n][1] for n in names], result)
        result.status = "scored"
        grid = Path("grids") / f"{result.sha256[:16]}.png"  # named by content: no student text in paths
        (self.out / "grids").mkdir(parents=True, exist_ok=True)
        save_grid(images[:_GRID_IMAGES], self.out / grid)
        result.grid = grid.as_posix()

    def _set_cache_path(self, key: str) -> Path:
        return self.out / "cache" / "sets" / f"{key}.json"

    def _set_protocol(self) -> dict:
        """What a set's score depends on: not the copy index, which only counts copies per archive."""
        return {k: v for k, v in self._protocol().items() if k != "copy_index"}

    def _set_score(self, images: np.ndarray, digests: list[str], result: GradeResult) -> tuple[float, int]:
        """(FID, n) of one accepted image set: computed once per distinct set, then reused (this
        run's table, else ``cache/sets/``), the images scored in the order of their pixel hashes."""
        from facegan.fid.distance import frechet_distance

        order = np.argsort(np.asarray(digests))  # a set's order, not an archive's: same set, same bits
        key = hashlib.sha256("\n".join(digests[i] for i in order).encode()).hexdigest()
        if key in self._sets:
            self.sets_reused += 1
            return self._sets[key]
        path = self._set_cache_path(key)
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("protocol") == self._set_protocol():
                fid, n = float(saved["fid"]), int(saved["n"])
                if np.isfinite(fid) and n == len(digests):
                    self._sets[key] = (fid, n)
                    self.sets_reused += 1
                    return fid, n
        except (OSError, ValueError, TypeError, KeyError, UnicodeError, AttributeError):
            pass  # missing, torn, not an object, or from another version: score it
        scorer = self.scorer
        st = scorer.statistics(self._batches(images[order], getattr(scorer, "batch_size", 8), result.student),
                               total=len(images), source=result.archive)
        fid = float(frechet_distance(st.mu, st.sigma, self.ref.mu, self.ref.sigma))
        self._sets[key] = (fid, st.n)
        self.sets_scored += 1
        atomic_write_text(path, json.dumps({"protocol": self._set_protocol(), "fid": fid, "n": st.n}))
        return fid, st.n

    def _batches(self, images: np.ndarray, size: int, label: str) -> Iterator[np.ndarray]:
        """``images`` in network-sized batches, counted on a bar from the first one (each batch is
        asked for once the one before went through the network)."""
        from tqdm import tqdm

        # mininterval 0: each update is a whole batch through the network (~1 s on a CPU core)
        with tqdm(total=len(images), desc=f"  {label[:24]}", unit="img", leave=False, mininterval=0, miniters=1,
                  disable=None if self.progress else True) as bar:  # None: off when not a terminal
            for i in range(0, len(images), size):
                yield images[i : i + size]
                bar.update(min(size, len(images) - i))


def load_reference(path: Path, dims: int = FEATURE_DIMS):
    """The reference statistics, checked (``dims``-wide, readable provenance) before anything is
    scored; a problem is a FaceganError naming the file."""
    from facegan.fid.stats import Stats

    try:
        return Stats.load(path, dims=dims)
    except FaceganError:
        raise
    except (ValueError, TypeError, KeyError, OSError) as exc:  # e.g. a malformed floor record
        from facegan.safeload import library_reason

        raise FaceganError(f"{path}: not usable as the reference ({library_reason(exc)})") from None


def flag_shared(results: list[GradeResult]) -> None:
    """Warn on every pair of submissions holding images with identical pixels or identical bytes,
    and on repeated student numbers."""
    owners: dict[str, set[int]] = defaultdict(set)
    for i, r in enumerate(results):
        for h in r.pixel_hashes:
            owners[h].add(i)
    shared: dict[tuple[int, int], int] = defaultdict(int)
    for idx in owners.values():
        if len(idx) > 1:
            for a in idx:
                for b in idx:
                    if a != b:
                        shared[a, b] += 1
    for (a, b), k in sorted(shared.items()):
        results[a].warnings.append(f"{k} image(s) identical to ones in {results[b].student} ({results[b].entry})")
    for key, what in ((lambda r: r.sha256, "the same archive bytes as"), (lambda r: r.student, "the same student number as")):
        groups: dict[str, list[GradeResult]] = defaultdict(list)
        for r in results:
            if r.status != "ignored" and key(r):
                groups[key(r)].append(r)
        for rs in groups.values():
            for r in rs:
                others = [x.entry for x in rs if x is not r]
                if others:
                    r.warnings.append(f"{what} {', '.join(others)}")


def rank_and_judge(results: list[GradeResult], target: float | None) -> list[GradeResult]:
    """Ranks (equal FIDs to 4 decimals share one), verdicts against ``target``, and the rows in
    order: scored by FID, then rejected, errors and ignored entries by name."""
    scored = sorted((r for r in results if r.status == "scored"), key=lambda r: (round(r.fid, 4), r.student))
    for i, r in enumerate(scored):
        r.rank = scored[i - 1].rank if i and round(r.fid, 4) == round(scored[i - 1].fid, 4) else i + 1
    for r in results:
        if target is None or r.status in ("ignored", "error"):
            r.verdict = ""
        elif r.status == "scored" and r.fid < target:  # the brief: FID below the target
            r.verdict = "review" if r.copies else "pass"
        else:
            r.verdict = "fail"
    order = {"rejected": 1, "error": 2, "ignored": 3}
    rest = sorted((r for r in results if r.status != "scored"), key=lambda r: (order[r.status], r.entry))
    return scored + rest


def _duration(seconds: float) -> str:
    """``"2 h 05 min"``, ``"3 min 10 s"`` or ``"42 s"``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def _clock() -> float:
    return time.perf_counter()


def _say(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)  # above any bar, never through it


def prepare_entries(entries: Iterable[Entry | str | os.PathLike], grader: Grader) -> list[Entry]:
    """The entries classified, and what must hold before anything is scored (copy index size,
    the reference's weights): a problem is a FaceganError before any work."""
    entries = [e if isinstance(e, Entry) else classify(Path(e)) for e in entries]
    index = grader.copy_index
    if index is not None and tuple(index.train.shape[1:3]) != (grader.size, grader.size):
        raise FaceganError(f"{index.source or 'training images'}: {index.train.shape[1]}x{index.train.shape[2]} photos, "
                           f"but submissions hold {grader.size}x{grader.size} images: give the 'facegan prepare' "
                           "cache of the same size")
    if any(e.action == "grade" for e in entries):
        grader.scorer  # a reference made with other weights fails here, before anything is scored
    return entries


def grade_entries(entries: list[Entry], grader: Grader, progress: bool = True,
                  say: Callable[[str], None] | None = None) -> list[GradeResult]:
    """Each entry's result, in the order given (not flagged or ranked): a bar over the entries,
    one over each archive's images, and after the first archive that needed the network, the
    time it took and what the rest should take."""
    from tqdm import tqdm

    say = say or _say
    grader.progress = progress
    to_grade = sum(e.action == "grade" for e in entries)
    results, seen, estimated = [], 0, False
    with tqdm(entries, desc="grade", unit="archive", disable=None if progress else True) as bar:
        for entry in bar:
            if progress:
                bar.set_postfix_str(entry.student[:24], refresh=True)
            passes, start = grader.sets_scored, _clock()
            results.append(grader.grade_one(entry))
            seen += entry.action == "grade"
            if not estimated and grader.sets_scored > passes:
                estimated = True
                took, left = _clock() - start, to_grade - seen
                say(f"facegan grade: {results[-1].entry} took {_duration(took)} to check and score"
                    + (f"; expect about {_duration(took * left)} more for the {left} archive(s) left "
                       "(less for those cached, rejected or holding an image set already scored)" if left else "")
                    + ("; a large class can be split over processes or machines with --shard K/N"
                       if took * left > 3600 else ""))
    return results


def reference_words(grader: Grader) -> str:
    """How the reference is described everywhere: its size, or that it is unknown."""
    return grader.ref.size_text("reference")


def run_info(grader: Grader) -> dict:
    """What every output says about the run, apart from its rows: the reference, the protocol,
    the target, the copy check, the weights (``None`` while no scorer was needed). JSON-ready;
    equal for every shard of one class, so a merge of shards (:mod:`facegan.gradeshards`) writes
    the outputs without the reference file or the network."""
    index = grader.copy_index
    return {
        "reference": str(grader.ref_path), "reference_sha256": grader.ref_sha256, "reference_n": grader.ref.n or None,
        "reference_words": reference_words(grader),
        "samples_per_submission": grader.count, "image_size": grader.size,
        "real_data_floor": grader.floor, "target": grader.target,
        "copy_check": None if index is None else {"train_images": index.source, "photos": len(index),
                                                  "threshold": index.threshold, "fingerprint": index.fingerprint},
        "weights_sha256": grader.weights_sha256,
    }


def grade(entries: Iterable[Entry | str | os.PathLike], grader: Grader, progress: bool = True,
          say: Callable[[str], None] | None = None) -> list[GradeResult]:
    """Grade every entry (cached results reused), flag what is shared, rank: the rows in ranking
    order. Writes only the per-archive cache and sample grids; the results files are written from
    the rows by :func:`facegan.leaderboard.write_results` (with :func:`run_info`)."""
    results = grade_entries(prepare_entries(entries, grader), grader, progress, say)
    flag_shared(results)
    return rank_and_judge(results, grader.target)
