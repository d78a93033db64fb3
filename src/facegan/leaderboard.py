"""The results of a grading run: ``scores.json``, ``scores.csv`` and ``index.html``.

One row per entry of the submissions folder, in ranking order (see :mod:`facegan.grade`), with
the same columns everywhere: rank, student, FID, the pass/fail verdict when a target was given,
the copy count when the copy check ran, status, problems, warnings. Every text that came from a
submission was escaped when it was recorded (:func:`facegan.safetext.shown`); each format then
escapes its own syntax: HTML entities, CSV cells that a spreadsheet would run as formulas.

The page is meant for hundreds of students: the summary first, sample grids loaded only when
scrolled to (``loading="lazy"``), columns sortable by a click through a few lines of inline
script (no external script; a Content-Security-Policy allows that one script and nothing else).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from facegan.grade import Grader, GradeResult

_HTML_PROBLEMS = 20  # shown at once on the page; the rest behind a "more" fold


def summary(rows: list["GradeResult"], target: float | None) -> dict:
    """Counts of the run: entries, scored, passing, to review, rejected, errors, ignored."""
    count = {s: sum(r.status == s for r in rows) for s in ("scored", "rejected", "error", "ignored")}
    out = {"entries": len(rows), **count}
    if target is not None:
        out["passing"] = sum(r.verdict == "pass" for r in rows)
        out["review"] = sum(r.verdict == "review" for r in rows)
    out["with_copies"] = sum(bool(r.copies) for r in rows)
    return out


def summary_line(s: dict, target: float | None) -> str:
    """The summary as one sentence (terminal, page)."""
    parts = [f"{s['scored']} scored"]
    if target is not None:
        parts.append(f"{s['passing']} passing (FID <= {target:g})")
        if s["review"]:
            parts.append(f"{s['review']} to review (FID meets the target, copies found)")
    parts += [f"{s['rejected']} rejected", f"{s['ignored']} ignored"]
    if s["error"]:
        parts.append(f"{s['error']} error(s) (not cached: rerun)")
    return f"{s['entries']} entries: " + ", ".join(parts)


def reference_words(grader: "Grader") -> str:
    """How the reference is described everywhere: its size, or that it is unknown."""
    return grader.ref.size_text("reference")


def header(grader: "Grader", rows: list["GradeResult"]) -> dict:
    """The run's provenance and summary, as stored at the top of ``scores.json``."""
    from facegan import __version__

    index = grader.copy_index
    return {
        "reference": str(grader.ref_path), "reference_sha256": grader.ref_sha256, "reference_n": grader.ref.n or None,
        "samples_per_submission": grader.count, "image_size": grader.size,
        "real_data_floor": grader.floor, "target": grader.target,
        "copy_check": None if index is None else {"train_images": index.source, "photos": len(index),
                                                  "threshold": index.threshold, "fingerprint": index.fingerprint},
        "weights_sha256": grader.scorer.weights_sha256 if any(r.status == "scored" for r in rows) else None,
        "summary": summary(rows, grader.target),
        "facegan": __version__, "graded_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_results(grader: "Grader", rows: list["GradeResult"]) -> dict[str, Path]:
    """``scores.json``, ``scores.csv`` and ``index.html`` of ``rows`` in the results folder."""
    from facegan.fileio import atomic_write_text

    out = grader.out
    out.mkdir(parents=True, exist_ok=True)
    head = header(grader, rows)
    records = [{k: v for k, v in asdict(r).items() if k != "pixel_hashes"} for r in rows]
    paths = {"json": out / "scores.json", "csv": out / "scores.csv", "html": out / "index.html"}
    atomic_write_text(paths["json"], json.dumps({**head, "submissions": records}, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(paths["csv"], _csv(rows, grader.target is not None))
    atomic_write_text(paths["html"], _html(head, rows, grader))
    return paths


def _cell(text: str) -> str:
    """A CSV cell that a spreadsheet shows as text: a leading = + - @ (or tab, CR) would make it a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(rows: list["GradeResult"], with_target: bool) -> str:
    table = io.StringIO(newline="")
    w = csv.writer(table)
    w.writerow(["rank", "student", "fid"] + (["pass"] if with_target else [])
               + ["copies", "n", "status", "problems", "warnings", "entry", "archive", "sha256"])
    for r in rows:
        w.writerow([r.rank or "", _cell(r.student), f"{r.fid:.4f}" if r.fid is not None else ""]
                   + ([r.verdict] if with_target else [])
                   + ["" if r.copies is None else r.copies, r.n, r.status, _cell(" | ".join(r.problems)),
                      _cell(" | ".join(r.warnings)), _cell(r.entry), _cell(r.archive), r.sha256])
    return table.getvalue()


# Sorts the table by the clicked column: numbers by data-v (empty last), text otherwise.
_SCRIPT = (
    "document.querySelectorAll('th[data-sort]').forEach(function(th){th.onclick=function(){"
    "var body=th.closest('table').tBodies[0],c=th.cellIndex,up=th.dataset.dir!=='asc';th.dataset.dir=up?'asc':'desc';"
    "var rows=Array.prototype.slice.call(body.rows),num=th.dataset.sort==='num';"
    "rows.sort(function(a,b){var x=a.cells[c].dataset.v,y=b.cells[c].dataset.v;"
    "if(num){x=x===''?Infinity:+x;y=y===''?Infinity:+y;return up?x-y:y-x}"
    "return up?x.localeCompare(y):y.localeCompare(x)});"
    "rows.forEach(function(r){body.appendChild(r)})}});"
)


def _html(head: dict, rows: list["GradeResult"], grader: "Grader") -> str:
    e = html.escape
    floor, target, copy = head["real_data_floor"], head["target"], head["copy_check"]
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    about = (f"FID of {head['samples_per_submission']} images per submission ({head['image_size']}x{head['image_size']}) "
             f"against <code>{e(head['reference'])}</code> ({e(reference_words(grader))}); lower is better. "
             + (f"Real photos score {floor:.2f} against this reference at this sample size (the floor). " if floor is not None
                else "The real-data floor is unknown (--floor). ")
             + (f"Target: FID &le; {target:g}. " if target is not None else "")
             + (f"Copy check against {copy['photos']:,} training photos (<code>{e(copy['train_images'])}</code>). " if copy
                else "Copy check off (--train-images). ")
             + f"Graded {e(head['graded_at'])} by facegan {e(head['facegan'])}.")
    cols = [("rank", "num"), ("student", "text"), ("FID", "num")] + ([("pass", "text")] if target is not None else []) \
        + [("copies", "num"), ("status", "text"), ("images", "num"), ("samples", None), ("notes", None)]
    th = "".join(f"<th data-sort='{kind}' title='sort'>{name}</th>" if kind else f"<th>{name}</th>" for name, kind in cols)
    lines = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"script-src 'sha256-{script_hash}'; object-src 'none'; base-uri 'none'\">",
        "<title>facegan grades</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}th[data-sort]{cursor:pointer}"
        ".rejected,.error{background:#fee}.ignored{color:#777}.warn{color:#a60}.fail{color:#a00}.pass{color:#070}"
        "img{image-rendering:pixelated}</style></head><body>",
        "<h1>FID leaderboard</h1>",
        f"<p><b>{e(summary_line(head['summary'], target))}.</b></p>",
        f"<p>{about}</p>",
        f"<table><thead><tr>{th}</tr></thead><tbody>",
    ]
    for r in rows:
        notes = "".join(f"<div>{e(p)}</div>" for p in r.problems[:_HTML_PROBLEMS])
        if len(r.problems) > _HTML_PROBLEMS:
            notes += ("<details><summary>" + f"{len(r.problems) - _HTML_PROBLEMS} more</summary>"
                      + "".join(f"<div>{e(p)}</div>" for p in r.problems[_HTML_PROBLEMS:]) + "</details>")
        notes += "".join(f"<div class='warn'>{e(w)}</div>" for w in r.warnings)
        grid = f"<img src='{e(r.grid)}' width='256' height='256' loading='lazy' alt='samples'>" if r.grid else ""
        fid = f"{r.fid:.2f}" if r.fid is not None else ""
        copies = "" if r.copies is None else str(r.copies)
        cells = [(r.rank or "", str(r.rank or "")), (e(r.student), e(r.student)), (fid or e(r.status), f"{r.fid:.6f}" if fid else "")]
        if target is not None:
            cells.append((f"<span class='{r.verdict}'>{r.verdict}</span>", r.verdict))
        cells += [(copies, copies), (e(r.status), r.status), (r.n, str(r.n)), (grid, ""), (notes, "")]
        tds = "".join(f"<td data-v='{v}'>{html_}</td>" for html_, v in cells)
        lines.append(f"<tr class='{r.status}'>{tds}</tr>")
    lines += ["</tbody></table>", f"<script>{_SCRIPT}</script>", "</body></html>\n"]
    return "\n".join(lines)
