"""One grading row: what the grader finds for an entry and every results output shows.

Its own small module so that :mod:`facegan.grade` (which fills the rows) and
:mod:`facegan.leaderboard` (which writes them out) both stand on it without importing each
other: the grader never calls the page writer, the page writer never reads the grader.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GradeResult:
    """One entry's outcome. Every text is escaped (:func:`facegan.safetext.shown`)."""

    student: str
    entry: str
    """The file name in the submissions folder."""
    archive: str
    """Its path."""
    sha256: str = ""
    """The archive's sha256 ('' when it was not read: ignored, or refused from its size)."""
    status: str = "rejected"
    """'scored', 'rejected', 'ignored' or 'error' (a failure on the grader's side)."""
    n: int = 0
    fid: float | None = None
    rank: int | None = None
    """1 for the lowest FID; equal FIDs (to 4 decimals) share a rank."""
    verdict: str = ""
    """With a target: 'pass', 'fail', or 'review' (FID meets the target but copies were found)."""
    copies: int | None = None
    """Images that are copies of training photos (``None``: copy check off or not scored)."""
    copy_examples: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Every problem of a rejected archive; the reason of an ignored entry or an error."""
    warnings: list[str] = field(default_factory=list)
    grid: str | None = None
    """The sample grid's path relative to the results folder."""
    pixel_hashes: list[str] = field(default_factory=list, repr=False)
    """Short hashes of each image's pixels (to find images shared between submissions)."""
