"""``facegan grade SUBMISSIONS... --ref ref.npz -o results/``: score and rank many submissions."""

from __future__ import annotations

import argparse
import textwrap

_TERMINAL_PROBLEMS = 3  # per rejected row; every one is in scores.csv / scores.json / index.html


def register(sub: argparse._SubParsersAction) -> None:
    from facegan.devices import DEVICE_METAVAR, device_arg

    p = sub.add_parser(
        "grade",
        usage="facegan grade SUBMISSIONS... --ref REF.npz -o RESULTS_DIR [--target FID] [--train-images NPY]\n"
              "                     [--shard K/N] [options]\n       facegan grade --merge RESULTS_DIR... -o RESULTS_DIR",
        help="(staff) check, FID-score and rank many <student>.tar.gz submissions",
        description=textwrap.fill(  # filled here: the epilog's lines are kept as written
            "Give every entry of the submissions folder a row: scored, rejected with every problem, or "
            "ignored with the reason. Each <student>.tar.gz is checked as 'facegan pack --verify' does "
            "(exactly --count decodable --size x --size RGB images, no duplicates, OS junk left out with a "
            "warning) without extracting anything, refusing unsafe paths, links, names that collide once "
            "extracted, oversized members, headers and images, and archives that take too long; each "
            "accepted one is scored by FID against REF with the same Inception network. Images shared "
            "between submissions, identical archives and, with --train-images, copies of training photos "
            "are flagged. Writes scores.json, scores.csv and index.html (ranked, with a sample grid per "
            "student) to -o. Results are cached per archive, and each distinct set of images is scored once: "
            "rerunning scores only new or changed files. On a CPU an archive takes minutes: split a large "
            "class over processes or machines with --shard K/N, then --merge.", width=100
        ),
        epilog="example:\n"
               "  facegan grade submissions/ --ref celeba-ref.npz -o results/ --target 20 --train-images celeba64.npy\n"
               "in 10 parts (e.g. a SLURM array job, --array=1-10, one part per task; README: 'What a class costs'):\n"
               "  facegan grade submissions/ --ref celeba-ref.npz -o results/ --target 20 --shard $SLURM_ARRAY_TASK_ID/10\n"
               "  facegan grade --merge results/ -o results/     # once all ten are done",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("submissions", nargs="*", metavar="SUBMISSION",
                   help="<student number>.tar.gz files, or folders holding them")
    p.add_argument("--ref", help="reference FID statistics (.npz) of the real 64x64 images: 'facegan stats' of a "
                        "'facegan prepare' cache (or a pytorch-fid .npz)")
    p.add_argument("-o", "--out", required=True, help="results folder (created): scores.json, scores.csv, index.html")
    p.add_argument("--count", type=int, default=1000, help="images each submission must hold (default: 1000)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default: 64)")
    p.add_argument("--target", type=float, default=None, metavar="FID",
                   help="pass below this FID (the brief: 20, strictly below): adds a pass/fail column and a summary of who passes; "
                        "a submission that meets it but holds copies of training photos is marked 'review'")
    p.add_argument("--train-images", default=None, metavar="NPY",
                   help="the training photos as a uint8 .npy ('facegan prepare' output): count the images of each "
                        "submission that are (near-)copies of them (also mirrored, re-encoded, shifted)")
    p.add_argument("--device", type=device_arg, metavar=DEVICE_METAVAR, default="auto", help="where the Inception network runs (default: auto)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for scoring (default: PyTorch's; on a shared machine fewer can be faster)")
    p.add_argument("--weights", default=None, help="FID Inception weights file (default: found offline as for 'facegan fid')")
    p.add_argument("--floor", type=float, default=None, metavar="FID",
                   help="the real-data floor to show beside the scores: what --count real photos score "
                        "against REF ('facegan fid REAL_SUBSET REF', or --floor of 'facegan fid'); "
                        "default: the floor recorded in REF at --count images, if any")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="grade only part K of N (archives dealt round-robin) and write RESULTS_DIR/shards/K-of-N.json; "
                        "run all N (as processes, machines or a SLURM array job), then --merge")
    p.add_argument("--merge", nargs="+", default=None, metavar="RESULTS_DIR",
                   help="combine the parts written by --shard (in these folders' shards/) into -o's scores.json, "
                        "scores.csv and index.html, as one run would have; the parts' settings are used")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facegan.devices import pick_device
    from facegan.runtime import configure_torch
    from facegan.errors import FaceganError
    from facegan.fid.options import ScorerOptions
    from facegan.grade import Grader, grade, list_submissions, run_info
    from facegan.leaderboard import write_results

    if args.merge is not None:
        return _merge(args)
    if not args.submissions or not args.ref:
        raise FaceganError("give the SUBMISSIONS to grade and --ref REF.npz (or --merge RESULTS_DIR... to combine "
                           "the parts of a --shard run)")
    if args.count < 2 or args.size < 1:
        raise FaceganError("--count must be at least 2 and --size positive")
    shard = None
    if args.shard is not None:
        from facegan.gradeshards import parse_shard

        shard = parse_shard(args.shard)  # before any work
    device = pick_device(args.device)  # --device cuda without a GPU: one line, before any work
    configure_torch(device, args.threads, scoring=True)  # the process's settings, once
    entries = list_submissions(args.submissions)
    opts = ScorerOptions(device=str(device), weights=args.weights)
    grader = Grader(args.ref, args.out, lambda: opts.scorer(progress=False), count=args.count, size=args.size,
                    floor=args.floor, target=args.target)  # the reference is checked here, before anything else
    if args.train_images:
        from facegan.copycheck import CopyIndex

        grader.copy_index = CopyIndex.from_file(args.train_images, progress=not args.quiet)
    if shard is not None:
        from facegan.gradeshards import grade_shard

        path, results = grade_shard(entries, grader, *shard, progress=not args.quiet)
        counts = {s: sum(r.status == s for r in results) for s in ("scored", "rejected", "error", "ignored")}
        print(f"facegan grade: part {shard[0]}/{shard[1]}: {len(results)} of {len(entries)} entries ("
              + ", ".join(f"{v} {k}" for k, v in counts.items()) + f"); {_passes(grader)}; written to {path}; "
              f"once all {shard[1]} parts are done: facegan grade --merge {args.out} -o {args.out}")
        return 0
    rows = grade(entries, grader, progress=not args.quiet)
    run = run_info(grader)
    write_results(grader.out, run, rows)  # grade() returns rows; the command writes them out
    _print(rows, run, grader.out, _passes(grader))
    return 0


def _passes(grader) -> str:
    """How many Inception passes ran, and how many archives reused an image set's score."""
    text = f"{grader.sets_scored} image set(s) scored"
    return text + (f", {grader.sets_reused} archive(s) reused the score of an identical image set"
                   if grader.sets_reused else "")


def _merge(args: argparse.Namespace) -> int:
    from facegan.errors import FaceganError
    from facegan.gradeshards import merge
    from facegan.leaderboard import write_results

    given = [name for name, value in (("SUBMISSIONS", args.submissions), ("--ref", args.ref), ("--shard", args.shard),
                                      ("--target", args.target), ("--train-images", args.train_images),
                                      ("--floor", args.floor)) if value]
    if given:
        raise FaceganError(f"--merge combines parts already graded, with their settings: leave out {', '.join(given)}")
    rows, run = merge(args.merge, args.out)
    write_results(args.out, run, rows)
    _print(rows, run, args.out, "")
    return 0


def _print(rows, run: dict, out, passes: str) -> None:
    from facegan.leaderboard import summary, summary_line

    target, checking = run["target"], run["copy_check"] is not None
    print(f"{'rank':>4}  {'student':<16} {'FID':>8}" + ("  pass  " if target is not None else "")
          + ("  copies" if checking else "") + "  notes")
    for r in rows:
        fid = f"{r.fid:8.2f}" if r.fid is not None else f"{r.status:>8}"
        verdict = f"  {r.verdict:<6}" if target is not None else ""
        copies = f"  {'' if r.copies is None else r.copies:>6}" if checking else ""
        first = r.problems[0] if r.problems else ""
        print(f"{r.rank or '':>4}  {r.student:<16} {fid}{verdict}{copies}  {first}")
        for p in r.problems[1:_TERMINAL_PROBLEMS]:
            print(f"{'':>6}{p}")
        if len(r.problems) > _TERMINAL_PROBLEMS:
            print(f"{'':>6}... and {len(r.problems) - _TERMINAL_PROBLEMS} more problem(s) (scores.csv)")
        for w in r.warnings:
            print(f"{'':>6}warning: {w}")
    floor = run["real_data_floor"]
    print(f"facegan grade: {summary_line(summary(rows, target), target)}; FID on {run['samples_per_submission']} "
          f"images each vs {run['reference']} ({run['reference_words']})"
          + (f"; real photos score {floor:.2f} at this size" if floor is not None else "; real-data floor unknown (--floor)")
          + ("" if checking else "; copy check off (--train-images)")
          + (f"; {passes}" if passes else "")
          + f"; results in {out}/ (index.html, scores.csv, scores.json)")
