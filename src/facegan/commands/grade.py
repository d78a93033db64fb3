"""``facegan grade SUBMISSIONS... --ref ref.npz -o results/``: score and rank many submissions."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grade",
        help="(staff) check, FID-score and rank many <student>.tar.gz submissions",
        description=(
            "Check every submission as 'facegan pack --verify' does (exactly --count decodable "
            "--size x --size RGB images, no duplicates), without extracting anything and refusing "
            "unsafe paths, links, oversized members and oversized images; score each accepted one by "
            "FID against REF with the same Inception network; flag images shared between "
            "submissions; write scores.json, scores.csv and index.html (ranked, with a sample grid "
            "per student) to -o. A rejected archive is listed with its problems and never stops "
            "the others. Results are cached per archive: rerunning scores only new or changed files."
        ),
        epilog="example: facegan grade submissions/ --ref celeba-ref.npz -o results/",
    )
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                   help="<student number>.tar.gz files, or folders holding them")
    p.add_argument("--ref", required=True, help="reference FID statistics (.npz) of the real 64x64 images: 'facegan stats' of a "
                        "'facegan prepare' cache (or a pytorch-fid .npz)")
    p.add_argument("-o", "--out", required=True, help="results folder (created): scores.json, scores.csv, index.html")
    p.add_argument("--count", type=int, default=1000, help="images each submission must hold (default: 1000)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default: 64)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the Inception network runs (default: auto)")
    p.add_argument("--weights", default=None, help="FID Inception weights file (default: found offline as for 'facegan fid')")
    p.add_argument("--floor", type=float, default=None, metavar="FID",
                   help="the real-data floor to show beside the scores: what --count real photos score "
                        "against REF ('facegan fid REAL_SUBSET REF', or --floor of 'facegan fid'); "
                        "default: the floor recorded in REF at --count images, if any")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facegan.errors import FaceganError
    from facegan.fid.options import ScorerOptions
    from facegan.grade import Grader, find_archives, grade
    from facegan.train.distributed import pick_device

    if args.count < 2 or args.size < 1:
        raise FaceganError("--count must be at least 2 and --size positive")
    archives = find_archives(args.submissions)
    opts = ScorerOptions(device=str(pick_device(args.device)), weights=args.weights)
    grader = Grader(args.ref, args.out, lambda: opts.scorer(progress=False), count=args.count, size=args.size,
                    floor=args.floor)
    results = grade(archives, grader, progress=not args.quiet)
    floor = grader.floor
    print(f"{'rank':>4}  {'student':<16} {'FID':>8}  notes")
    for rank, r in enumerate(results, 1):
        if r.status == "scored":
            note = f"{len(r.warnings)} warning(s)" if r.warnings else ""
            print(f"{rank:>4}  {r.student:<16} {r.fid:>8.2f}  {note}")
        else:
            print(f"{'':>4}  {r.student:<16} {'rejected':>8}  {r.problems[0] if r.problems else ''}")
    scored = sum(r.status == "scored" for r in results)
    print(f"facegan grade: {scored} scored, {len(results) - scored} rejected; FID on {args.count} images each "
          f"vs {args.ref} ({f'{grader.ref.n} images' if grader.ref.n else 'image count not recorded'})"
          + (f"; real photos score {floor:.2f} at this size" if floor is not None else "; real-data floor unknown (--floor)")
          + f"; results in {grader.out}/ (index.html, scores.csv, scores.json)")
    return 0
