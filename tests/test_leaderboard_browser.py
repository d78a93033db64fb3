"""The results page of a 500-student class in a real browser (headless Chromium, driven by
Playwright): the header row stays in view, a click sorts and marks the column, the filter hides
rows, ``review`` rows stand out, nothing is fetched from outside, the Content-Security-Policy is
there, and no script hidden in a student's name or an archive's member names runs.

Needs Chromium (Debian: ``apt-get install chromium``) and Playwright for Python (``pip install
playwright``; its own browser download is not used): skipped, saying which is missing, where
either is absent. ``FACEGAN_CHROMIUM`` names another Chromium binary.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from facegan.grade import GradeResult, flag_shared, rank_and_judge
from facegan.leaderboard import write_results

pytestmark = pytest.mark.browser

ROWS = 500
HOSTILE = [
    "<img src=x onerror=\"window.__pwned='img'\">",
    "\"><script>window.__pwned='script'</script>",
    "'><svg onload=alert(1)>",
    "</td></tr></table><script>alert(2)</script>",
]


def _chromium() -> str:
    path = os.environ.get("FACEGAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not Path(path).exists():
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; or set FACEGAN_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path)
        yield b
        b.close()


def _class_page(folder: Path) -> tuple[Path, list[GradeResult]]:
    """index.html of 500 rows: scored (pass, fail, review), rejected, ignored; hostile names and notes."""
    from facegan.grids import save_grid

    rng = np.random.default_rng(0)
    (folder / "grids").mkdir(parents=True)
    results = []
    for i in range(ROWS):
        student = HOSTILE[i % len(HOSTILE)] if i % 97 == 5 else f"2025{i:04d}"
        r = GradeResult(student, f"{student}.tar.gz", f"/subs/{student}.tar.gz", sha256=f"{i:064x}")
        if i % 10 == 7:
            r.status, r.problems = "rejected", [f"{i:04d}.png: 32x32, expected 64x64", f"<b>{HOSTILE[i % 4]}</b>"]
        elif i % 25 == 3:
            r.status, r.problems = "ignored", ["not a submission (only <student number>.tar.gz files are graded)"]
        else:
            r.status, r.n, r.fid, r.copies = "scored", 1000, float(rng.uniform(10, 60)), int(i % 13 == 0) * 4
            if r.copies:
                r.warnings = [f"4 image(s) are copies of training photos (e.g. {HOSTILE[0]}.png ≈ training photo #3)"]
            if i < 6:  # a few real grids: the page loads them lazily, from the results folder only
                r.grid = f"grids/{i:016x}.png"
                save_grid(rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8), folder / r.grid)
        results.append(r)
    flag_shared(results)
    rows = rank_and_judge(results, 30.0)
    run = {"reference": "celeba-ref.npz", "reference_sha256": "0" * 64, "reference_n": 10000,
           "reference_words": "10000 images", "samples_per_submission": 1000, "image_size": 64,
           "real_data_floor": 16.43, "target": 30.0, "copy_check": None, "weights_sha256": "5" * 64}
    return write_results(folder, run, rows)["html"], rows


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    html_path, rows = _class_page(tmp_path_factory.mktemp("results"))
    pg = browser.new_page(viewport={"width": 1200, "height": 800})
    events = {"requests": [], "dialogs": [], "console": []}
    pg.on("request", lambda req: events["requests"].append(req.url))
    pg.on("dialog", lambda d: (events["dialogs"].append(d.message), d.dismiss()))
    pg.on("console", lambda msg: events["console"].append(msg.text))
    pg.goto(html_path.as_uri())
    pg.wait_for_load_state("load")
    yield pg, rows, events
    pg.close()


def _visible(pg) -> list[dict]:
    return pg.evaluate("""Array.prototype.slice.call(document.querySelectorAll('#grades tbody tr'))
        .filter(function(r){return !r.hidden}).map(function(r){return {status:r.dataset.status,
        verdict:r.dataset.verdict, text:r.textContent, fid:r.cells[2].dataset.v}})""")


def _marks(pg) -> dict[str, str]:
    """{header: its aria-sort and the mark the CSS draws after it}."""
    return pg.evaluate("""(function(){var o={};document.querySelectorAll('#grades th[data-sort]').forEach(function(th){
        o[th.textContent]=(th.getAttribute('aria-sort')||'')+' '+getComputedStyle(th,'::after').content});return o})()""")


def test_the_policy_holds_and_nothing_injected_runs(page):
    pg, rows, events = page
    csp = pg.get_attribute("meta[http-equiv='Content-Security-Policy']", "content")
    assert "script-src 'sha256-" in csp and "object-src 'none'" in csp and "base-uri 'none'" in csp
    assert pg.locator("script").count() == 1 and pg.locator("script[src]").count() == 0
    assert pg.evaluate("window.__pwned") is None and events["dialogs"] == []
    assert not any("Content Security Policy" in c for c in events["console"])  # the page's own script is allowed
    assert pg.locator("#grades tbody tr").count() == ROWS
    hostile = [r.student for r in rows if r.student in HOSTILE]
    assert hostile and all(pg.get_by_text(h, exact=True).count() >= 1 for h in hostile)  # shown as text
    assert pg.locator("#grades img[src='x'], #grades svg").count() == 0  # no element made from a name


def test_a_click_sorts_and_marks_the_column(page):
    pg, rows, _ = page
    marks = _marks(pg)
    assert marks["rank"].startswith("ascending") and "▲" in marks["rank"]  # the page opens sorted by rank
    assert all(not v.startswith(("ascending", "descending")) for k, v in marks.items() if k != "rank")
    pg.click("#grades th:text-is('FID')")
    marks = _marks(pg)
    assert marks["FID"].startswith("ascending") and "▲" in marks["FID"] and not marks["rank"].startswith("asc")
    fids = [float(r["fid"]) for r in _visible(pg) if r["fid"]]
    assert len(fids) == sum(r.fid is not None for r in rows) and fids == sorted(fids)
    pg.click("#grades th:text-is('FID')")
    assert _marks(pg)["FID"].startswith("descending") and "▼" in _marks(pg)["FID"]
    fids = [float(r["fid"]) for r in _visible(pg) if r["fid"]]
    assert fids == sorted(fids, reverse=True)
    pg.click("#grades th:text-is('rank')")  # back to the ranking


def test_the_filter_hides_rows_by_status_and_text(page):
    pg, rows, _ = page
    want = {s: sum(r.verdict == s or r.status == s for r in rows) for s in ("pass", "fail", "review", "rejected", "ignored")}
    assert all(want.values())
    for status, n in want.items():
        pg.select_option("#status", status)
        shown = _visible(pg)
        assert len(shown) == n and all(status in (r["status"], r["verdict"]) for r in shown)
        assert pg.inner_text("#shown") == f"{n} of {ROWS} rows"
    pg.select_option("#status", "")
    pg.fill("#text", "20250042")
    assert [r["text"].split("20250042")[0] for r in _visible(pg)] and all("20250042" in r["text"] for r in _visible(pg))
    assert len(_visible(pg)) == sum("20250042" in r.student for r in rows)
    pg.fill("#text", "<script>")  # a hostile name is found as text, and still runs nothing
    assert len(_visible(pg)) >= 1 and pg.evaluate("window.__pwned") is None
    pg.fill("#text", "")
    assert len(_visible(pg)) == ROWS and pg.inner_text("#shown") == f"all {ROWS} rows"


def test_the_header_stays_at_the_top_and_review_rows_stand_out(page):
    pg, rows, events = page
    height = pg.evaluate("document.documentElement.scrollHeight")
    assert height > 10 * 800  # many screens long, as a class makes
    for y in (5000, height // 2, height):
        pg.evaluate(f"window.scrollTo(0, {y})")
        top = pg.evaluate("document.querySelector('#grades thead th').getBoundingClientRect().top")
        first = pg.evaluate("document.querySelector('#grades tbody tr').getBoundingClientRect().top")
        assert abs(top) <= 1 and first < -1000  # the rows went up, the header stayed
    colours = pg.evaluate("""(function(){var o={};['review','pass','fail'].forEach(function(v){
        var r=document.querySelector('#grades tbody tr[data-verdict='+v+']');o[v]=getComputedStyle(r).backgroundColor});return o})()""")
    assert colours["review"] != colours["pass"] and colours["review"] != colours["fail"]
    pg.evaluate("window.scrollTo(0, 0)")
    pg.wait_for_function("document.querySelector('#grades img').complete")  # the grids near the top come in
    assert any(u.endswith(".png") for u in events["requests"])
    assert events["requests"] and all(u.startswith("file://") for u in events["requests"])  # nothing from outside
