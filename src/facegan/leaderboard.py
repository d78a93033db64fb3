"""The results of a grading run: ``scores.json``, ``scores.csv`` and ``index.html``.

One row per entry of the submissions folder, in ranking order (see :mod:`facegan.grade`), with
the same columns everywhere: rank, student, FID, the pass/fail verdict when a target was given,
the copy count when the copy check ran, status, problems, warnings. Every text that came from a
submission was escaped when it was recorded (:func:`facegan.safetext.shown`); each format then
escapes its own syntax: HTML entities, CSV cells that a spreadsheet would run as formulas.

The page is meant for hundreds of students: the summary first, a header row that stays at the
top while the table scrolls, sample grids loaded only when scrolled to (``loading="lazy"``),
columns sortable by a click (the sorted one marked), rows filtered by status or verdict and by
free text, ``review`` rows tinted. All of it is one inline script and CSS in the one file: no
external script, and a Content-Security-Policy that allows that one script (by its sha256) and
nothing else, so nothing a submission's name holds can run. ``tests/test_leaderboard_browser.py``
checks it in a real Chromium.

It is given everything it shows: the rows (:class:`~facegan.graderows.GradeResult`) and what the
outputs say of the run (reference, protocol, target, copy check) as one plain dict
(:func:`facegan.grade.run_info`), so a merge of shards (:mod:`facegan.gradeshards`) writes them
without the reference file or the network, and this module never imports the grader.
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

from facegan.graderows import GradeResult

_HTML_PROBLEMS = 20  # shown at once on the page; the rest behind a "more" fold


def summary(rows: list[GradeResult], target: float | None) -> dict:
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


def header(run: dict, rows: list[GradeResult]) -> dict:
    """The run's provenance and summary, as stored at the top of ``scores.json``."""
    from facegan import __version__

    head = {k: v for k, v in run.items() if k not in ("reference_words", "weights_sha256")}
    return {
        **head,
        "weights_sha256": run["weights_sha256"] if any(r.status == "scored" for r in rows) else None,
        "summary": summary(rows, run["target"]),
        "facegan": __version__, "graded_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_results(out: Path, run: dict, rows: list[GradeResult]) -> dict[str, Path]:
    """``scores.json``, ``scores.csv`` and ``index.html`` of ``rows`` in the results folder ``out``."""
    from facegan.fileio import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    head = header(run, rows)
    records = [{k: v for k, v in asdict(r).items() if k != "pixel_hashes"} for r in rows]
    paths = {"json": out / "scores.json", "csv": out / "scores.csv", "html": out / "index.html"}
    atomic_write_text(paths["json"], json.dumps({**head, "submissions": records}, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(paths["csv"], _csv(rows, run["target"] is not None))
    atomic_write_text(paths["html"], _html(head, rows, run["reference_words"]))
    return paths


def _cell(text: str) -> str:
    """A CSV cell that a spreadsheet shows as text: a leading = + - @ (or tab, CR) would make it a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(rows: list[GradeResult], with_target: bool) -> str:
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


# The page's one script (allowed by its sha256 in the CSP): sorting by a header click (numbers
# by data-v, empty last; the sorted header gets aria-sort, which the CSS marks), and the filter
# (status or verdict, and text anywhere in the row). It only moves rows and sets `hidden`,
# `aria-sort` and textContent: no HTML is ever built from the page's text.
_SCRIPT = (
    "(function(){var t=document.getElementById('grades'),body=t.tBodies[0],ths=t.tHead.rows[0].cells,"
    "all=Array.prototype.slice.call(body.rows),st=document.getElementById('status'),"
    "q=document.getElementById('text'),shown=document.getElementById('shown');"
    "function filter(){var s=st.value,w=q.value.trim().toLowerCase(),k=0;"
    "all.forEach(function(r){var ok=(!s||r.dataset.status===s||r.dataset.verdict===s)"
    "&&(!w||r.textContent.toLowerCase().indexOf(w)>=0);r.hidden=!ok;if(ok)k++});"
    "shown.textContent=k===all.length?'all '+k+' rows':k+' of '+all.length+' rows'}"
    "st.onchange=filter;q.oninput=filter;filter();"
    "Array.prototype.forEach.call(ths,function(th){if(!th.dataset.sort)return;"
    "th.onclick=function(){var c=th.cellIndex,up=th.getAttribute('aria-sort')!=='ascending',"
    "num=th.dataset.sort==='num';"
    "Array.prototype.forEach.call(ths,function(h){h.removeAttribute('aria-sort')});"
    "th.setAttribute('aria-sort',up?'ascending':'descending');"
    "var rows=Array.prototype.slice.call(body.rows);"
    "rows.sort(function(a,b){var x=a.cells[c].dataset.v,y=b.cells[c].dataset.v;"
    "if(num){x=x===''?Infinity:+x;y=y===''?Infinity:+y;return x===y?0:up?(x<y?-1:1):(x<y?1:-1)}"
    "return up?x.localeCompare(y):y.localeCompare(x)});"
    "rows.forEach(function(r){body.appendChild(r)})};"
    "th.onkeydown=function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();th.onclick()}}})})();"
)

_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:separate;border-spacing:0}"
    "td,th{border:1px solid #ccc;border-width:0 1px 1px 0;padding:4px 8px;vertical-align:top}"
    "tr>:first-child{border-left-width:1px}"
    # the header row stays in view over 500 rows (sticky needs `separate` borders to keep its own)
    "thead th{position:sticky;top:0;z-index:1;background:#eee;border-top-width:1px}"
    "th[data-sort]{cursor:pointer}th[data-sort]::after{content:' \\2195';color:#999}"
    "th[aria-sort]{background:#cde}th[aria-sort=ascending]::after{content:' \\25B2';color:#000}"
    "th[aria-sort=descending]::after{content:' \\25BC';color:#000}"
    "th{white-space:nowrap}"
    ".rejected,.error{background:#fee}.ignored{color:#777}.warn{color:#a60}span.fail{color:#a00}span.pass{color:#070}"
    "tr.review{background:#fff3c4}tr.review>:first-child{box-shadow:inset 4px 0 #d90}span.review{color:#a60;font-weight:bold}"
    ".filter label{margin-right:1em}"
    "img{image-rendering:pixelated}"
)


def _html(head: dict, rows: list[GradeResult], reference_words: str) -> str:
    e = html.escape
    floor, target, copy = head["real_data_floor"], head["target"], head["copy_check"]
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    about = (f"FID of {head['samples_per_submission']} images per submission ({head['image_size']}x{head['image_size']}) "
             f"against <code>{e(head['reference'])}</code> ({e(reference_words)}); lower is better. "
             + (f"Real photos score {floor:.2f} against this reference at this sample size (the floor). " if floor is not None
                else "The real-data floor is unknown (--floor). ")
             + (f"Target: FID &le; {target:g}. " if target is not None else "")
             + (f"Copy check against {copy['photos']:,} training photos (<code>{e(copy['train_images'])}</code>). " if copy
                else "Copy check off (--train-images). ")
             + f"Graded {e(head['graded_at'])} by facegan {e(head['facegan'])}.")
    cols = [("rank", "num"), ("student", "text"), ("FID", "num")] + ([("pass", "text")] if target is not None else []) \
        + [("copies", "num"), ("status", "text"), ("images", "num"), ("samples", None), ("notes", None)]
    # rows arrive in ranking order: the rank column is the sorted one
    th = "".join((f"<th data-sort='{kind}' tabindex='0' title='sort'" + (" aria-sort='ascending'" if name == "rank" else "")
                  + f">{name}</th>") if kind else f"<th>{name}</th>" for name, kind in cols)
    statuses = (["pass", "fail", "review"] if target is not None else []) + ["scored", "rejected", "error", "ignored"]
    options = "<option value=''>all</option>" + "".join(f"<option value='{s}'>{s}</option>" for s in statuses)
    lines = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"script-src 'sha256-{script_hash}'; object-src 'none'; base-uri 'none'\">",
        "<title>facegan grades</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>FID leaderboard</h1>",
        f"<p><b>{e(summary_line(head['summary'], target))}.</b></p>",
        f"<p>{about}</p>",
        f"<p class='filter'><label>show <select id='status'>{options}</select></label>"
        "<label>containing <input id='text' type='search' placeholder='student, problem, warning'></label>"
        "<span id='shown'></span></p>",
        f"<table id='grades'><thead><tr>{th}</tr></thead><tbody>",
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
            cells.append((f"<span class='{e(r.verdict)}'>{e(r.verdict)}</span>", e(r.verdict)))
        cells += [(copies, copies), (e(r.status), e(r.status)), (r.n, str(r.n)), (grid, ""), (notes, "")]
        tds = "".join(f"<td data-v='{v}'>{html_}</td>" for html_, v in cells)
        lines.append(f"<tr class='{e(r.status)}{' ' + e(r.verdict) if r.verdict else ''}' data-status='{e(r.status)}' "
                     f"data-verdict='{e(r.verdict)}'>{tds}</tr>")
    lines += ["</tbody></table>", f"<script>{_SCRIPT}</script>", "</body></html>\n"]
    return "\n".join(lines)
