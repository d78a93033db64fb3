"""`grade --target 20` passes FID strictly below 20, as the brief says ("below 20")."""

from facegan.grade import GradeResult, rank_and_judge


def test_target_passes_only_strictly_below():
    rows = [GradeResult(s, s, s, status="scored", fid=f) for s, f in (("a", 19.99), ("b", 20.0), ("c", 20.01))]
    judged = {r.student: r.verdict for r in rank_and_judge(rows, 20.0)}
    assert judged == {"a": "pass", "b": "fail", "c": "fail"}
