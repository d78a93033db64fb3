"""Grading a large class in parts: ``facegan grade ... --shard K/N``, then ``facegan grade --merge``.

On a CPU one 1,000-image archive costs minutes (the Inception pass), so a 500-student class is a
day and more on one core. Each of N processes or machines (a SLURM array job: ``--shard
$SLURM_ARRAY_TASK_ID/N``) grades its part of the same submissions listing and writes
``<out>/shards/K-of-N.json``: its rows before anything is compared across students (no flags,
no ranks), with the pixel hashes that comparison needs, the listing it saw and the run's
settings (:func:`facegan.grade.run_info`). :func:`merge` then checks that all N parts are
there, saw the same listing and used the same settings, puts the rows back in listing order and
does what a single run does after grading — flag what is shared, rank — and returns the rows
and settings that the command writes out as a single run's, so its outputs equal one run's (``scores.json`` up to its ``graded_at`` time). Shards that write to one results
folder (a shared file system) also share its caches: an archive or image set scored by one is
not scored again by a later one.

Which part an entry belongs to: the archives to grade are dealt round-robin in listing order
(part k gets the k-th, the (k+N)-th, ...: equal counts); entries that are ignored or rejected
from their name alone cost nothing and all go to part 1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable

from facegan.errors import FaceganError
from facegan.fileio import atomic_write_text
from facegan.grade import (Entry, Grader, GradeResult, flag_shared, grade_entries, prepare_entries,
                           rank_and_judge, run_info)

FORMAT = "facegan-grade-shard"
VERSION = 1
_NAME = re.compile(r"^(\d+)-of-(\d+)\.json$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/10"`` → ``(3, 10)``; anything else is a FaceganError saying what is expected."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    k, n = (int(m[1]), int(m[2])) if m else (0, 0)
    if not m or not 1 <= k <= n:
        raise FaceganError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. --shard 3/10 "
                           "(the third of ten parts; a SLURM array job gives $SLURM_ARRAY_TASK_ID as K)")
    return k, n


def shard_indices(entries: list[Entry], k: int, n: int) -> list[int]:
    """Positions in ``entries`` of part ``k`` of ``n``: archives to grade dealt round-robin,
    everything else in part 1."""
    gradable = [i for i, e in enumerate(entries) if e.action == "grade"]
    mine = set(gradable[k - 1 :: n])
    return [i for i, e in enumerate(entries) if i in mine or (k == 1 and e.action != "grade")]


def shard_path(out: str | os.PathLike, k: int, n: int) -> Path:
    """Where part ``k`` of ``n`` is written in the results folder ``out``."""
    return Path(out) / "shards" / f"{k}-of-{n}.json"


def grade_shard(entries: Iterable[Entry | str | os.PathLike], grader: Grader, k: int, n: int,
                progress: bool = True, say: Callable[[str], None] | None = None) -> tuple[Path, list[GradeResult]]:
    """Grade part ``k`` of ``n`` of ``entries`` and write it (:func:`shard_path`); its path and rows."""
    entries = prepare_entries(entries, grader)
    mine = shard_indices(entries, k, n)
    results = grade_entries([entries[i] for i in mine], grader, progress, say)
    record = {"format": FORMAT, "version": VERSION, "shard": [k, n], "listing": [e.name for e in entries],
              "indices": mine, "run": run_info(grader), "results": [asdict(r) for r in results]}
    path = shard_path(grader.out, k, n)
    atomic_write_text(path, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    return path, results


def _load(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeError) as exc:
        raise FaceganError(f"{path}: not readable as a grading shard ({getattr(exc, 'strerror', None) or exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise FaceganError(f"{path}: not a facegan grading shard")
    if record.get("version") != VERSION:
        raise FaceganError(f"{path}: a grading shard of format version {record.get('version')}, this facegan reads "
                           f"{VERSION}: grade that part again")
    try:
        k, n = map(int, record["shard"])
        listing, indices, run = list(record["listing"]), [int(i) for i in record["indices"]], dict(record["run"])
        results = [GradeResult(**r) for r in record["results"]]
        assert len(results) == len(indices) and all(0 <= i < len(listing) for i in indices)
    except (KeyError, TypeError, ValueError, AssertionError):
        raise FaceganError(f"{path}: a damaged grading shard (grade that part again)") from None
    return {"path": path, "k": k, "n": n, "listing": listing, "indices": indices, "run": run, "results": results}


def _settings(run: dict) -> dict:
    """What must be equal in every part: the run's settings without the paths, which may differ
    between machines (the reference's and the copy index's contents are compared by checksum)."""
    keep = {k: v for k, v in run.items() if k not in ("reference", "reference_words")}
    if isinstance(keep.get("copy_check"), dict):
        keep["copy_check"] = {k: v for k, v in keep["copy_check"].items() if k != "train_images"}
    return keep


def find_shards(dirs: Iterable[str | os.PathLike]) -> list[dict]:
    """Every part of one split found under ``<dir>/shards/``, checked: one split only, each part
    once, none missing, the same listing and settings everywhere. A problem is a FaceganError."""
    parts: list[dict] = []
    for d in map(Path, dirs):
        folder = d / "shards"
        files = sorted(p for p in folder.glob("*-of-*.json") if _NAME.match(p.name)) if folder.is_dir() else []
        if not files:
            raise FaceganError(f"{d}: no grading shards in {folder}/ (written by 'facegan grade ... -o {d} --shard K/N')")
        parts += [{**_load(p), "dir": d} for p in files]
    splits = sorted({p["n"] for p in parts})
    if len(splits) > 1:
        raise FaceganError(f"shards of {' and of '.join(map(str, splits))} parts found ("
                           f"{', '.join(str(p['path']) for p in parts)}): remove those of the old split")
    n = splits[0]
    by_k: dict[int, dict] = {}
    for p in parts:
        if p["k"] in by_k:
            raise FaceganError(f"part {p['k']} of {n} found twice: {by_k[p['k']]['path']} and {p['path']}")
        by_k[p["k"]] = p
    missing = [k for k in range(1, n + 1) if k not in by_k]
    if missing:
        raise FaceganError(f"{len(missing)} of {n} parts missing ({', '.join(f'{k}/{n}' for k in missing[:10])}"
                           f"{', ...' if len(missing) > 10 else ''}): run 'facegan grade ... --shard K/{n}' for each first")
    first = by_k[1]
    for p in by_k.values():
        if p["listing"] != first["listing"]:
            raise FaceganError(f"{p['path']}: graded another list of submissions ({len(p['listing'])} entries) than "
                               f"{first['path']} ({len(first['listing'])}): grade every part of the same folder again")
        mine, theirs = _settings(first["run"]), _settings(p["run"])
        for key in sorted(set(mine) | set(theirs)):
            a, b = mine.get(key), theirs.get(key)
            if a != b and not (key == "weights_sha256" and None in (a, b)):  # a part with nothing to score has none
                raise FaceganError(f"{p['path']}: graded with another {key} ({b!r}) than {first['path']} ({a!r}): "
                                   "give every part the same options")
    return [by_k[k] for k in range(1, n + 1)]


def merge(dirs: Iterable[str | os.PathLike], out: str | os.PathLike,
          say: Callable[[str], None] | None = None) -> tuple[list[GradeResult], dict]:
    """The rows (ranking order) and run settings of all parts under ``dirs``, for ``out``: sample
    grids of parts in other folders are copied there; the command writes the results files
    (:func:`facegan.leaderboard.write_results`) from what this returns."""
    from facegan.grade import _say

    parts = find_shards(dirs)
    listing = parts[0]["listing"]
    slots: list[GradeResult | None] = [None] * len(listing)
    for p in parts:
        for i, r in zip(p["indices"], p["results"]):
            if slots[i] is not None:
                raise FaceganError(f"{p['path']}: entry {listing[i]} is graded by two parts (a shard file was edited?)")
            slots[i] = r
    lost = [listing[i] for i, r in enumerate(slots) if r is None]
    if lost:
        raise FaceganError(f"{len(lost)} entries are in no part ({', '.join(lost[:5])}): grade every part again")
    run = dict(parts[0]["run"])
    run["weights_sha256"] = next((p["run"]["weights_sha256"] for p in parts if p["run"].get("weights_sha256")), None)
    out = Path(out)
    absent = 0
    for p in parts:  # grids are named by archive content: the same name is the same picture
        for r in p["results"]:
            if not r.grid:
                continue
            src, dst = p["dir"] / r.grid, out / r.grid
            if dst.exists() or src.resolve() == dst.resolve():
                continue
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            else:
                absent += 1
    if absent:
        (say or _say)(f"facegan grade: warning: {absent} sample grid(s) of the parts are missing (copy each "
                      "part's grids/ folder with its shards/)")
    results = [r for r in slots if r is not None]
    flag_shared(results)
    return rank_and_judge(results, run["target"]), run
