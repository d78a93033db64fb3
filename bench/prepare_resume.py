"""What ``facegan prepare``'s resume check costs: hashing the inputs and outputs of the chunks it reuses.

    python bench/prepare_resume.py                    # ../shared/data/celeba-10k, 2 workers

A resumed run reuses a finished chunk only after hashing its input files and its output again
(sizes and mtimes are not trusted). Timed here, on the same photos (page cache warm):

* ``fresh``: a whole run (after an untimed one: imports and the first fork are not counted);
* ``check``: the check alone, every chunk finished (:func:`facegan.data.cache._check_inputs` over
  the chunks' records, plus the output hashes of :func:`facegan.data.cache._finished_chunk`);
* ``resume``: a run whose last chunk alone was left undone (check + one chunk + the final write).

Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _common import PHOTOS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=PHOTOS)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    import facegan.data.cache as cache
    from facegan.data import PrepareConfig, prepare, work_dir
    from facegan.images import open_source

    quiet = dict(progress=False, log=lambda m: None)
    source = open_source(args.src)
    for name in source.names:  # page cache warm for every run
        source.read_bytes(name)
    cfg = PrepareConfig(workers=args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        prepare(args.src, Path(tmp) / "warm.npy", cfg, **quiet)  # imports, first fork: not timed
        t = time.perf_counter()
        prepare(args.src, Path(tmp) / "c.npy", cfg, **quiet)
        fresh = time.perf_counter() - t

        # every chunk finished: stop the run just before the final write, keep the work folder
        real_write = cache._write_cache

        def stop(*a, **k):
            raise KeyboardInterrupt

        cache._write_cache = stop
        try:
            prepare(args.src, Path(tmp) / "d.npy", cfg, **quiet)
        except KeyboardInterrupt:
            pass
        cache._write_cache = real_write
        work = work_dir(Path(tmp) / "d.npy")
        jobs = [(i, s, min(s + cfg.chunk, len(source.names)))
                for i, s in enumerate(range(0, len(source.names), cfg.chunk))]
        t = time.perf_counter()
        metas = {i: cache._finished_chunk(work, i, s, e, cfg.size, False) for i, s, e in jobs}
        changed = cache._check_inputs(source, jobs, metas)
        check = time.perf_counter() - t
        assert not changed and all(metas.values())

        last = max(work.glob("chunk-*.json"))
        last.unlink()  # the last chunk undone: a resumed run redoes it
        t = time.perf_counter()
        report = prepare(args.src, Path(tmp) / "d.npy", cfg, **quiet)
        resume = time.perf_counter() - t
        shutil.rmtree(work, ignore_errors=True)
    n = len(source.names)
    print(f"{n} photos, {len(jobs)} chunks of {cfg.chunk}, {args.workers} workers")
    print(f"fresh run               {fresh:6.2f} s  ({n / fresh:,.0f} photos/s)")
    print(f"check of {len(jobs)} chunks       {check:6.2f} s  ({n / check:,.0f} photos/s; "
          f"{100 * check / fresh:.0f} % of a fresh run)")
    print(f"resume, 1 chunk undone  {resume:6.2f} s  (reused {report.resumed_chunks} chunks)")


if __name__ == "__main__":
    main()
