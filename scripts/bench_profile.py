#!/usr/bin/env python3
"""Profile payretry's two hot paths on SQLite, the way scripts/bench.py runs them, and print
the top of the profile (cumulative and own time).

    bench_profile.py run-due --jobs 100000      # Runner.run_due over N due jobs, zero latency
    bench_profile.py queue --jobs 100000        # new_job + Operations.queue_many of N rows
    bench_profile.py run-due --pyinstrument     # the same under pyinstrument (the bench extra)
    bench_profile.py run-due --save run.prof    # keep the cProfile data (snakeviz, pstats)

What it does is what `payretry queue --from-file` and `payretry run-due` do after start-up (the
command line's own cost is the `cli` section of bench.py and `python -X importtime`): the same
rows as bench.py, a fresh database file, the simulated processor at success rate 1.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import make_due_sqlite, make_rows, sqlite_url  # noqa: E402


def queue(path: Path, n: int) -> Any:
    from payretry.domain.policy import RetryPolicy
    from payretry.service.intake import new_job
    from payretry.service.operations import Operations
    from payretry.store.sql import open_store

    rows = make_rows(n)
    store = open_store(sqlite_url(path))
    now = datetime.now(UTC)

    def work() -> None:
        requests = [(line, new_job(fields, now=now)) for line, fields in enumerate(rows, 1)]
        Operations(store, RetryPolicy.standard()).queue_many(requests, now)

    return store, work


def run_due(path: Path, n: int) -> Any:
    from payretry.clock import utcnow
    from payretry.domain.policy import RetryPolicy
    from payretry.processors.simulated import SimulatedProcessor
    from payretry.service.runner import Runner

    store, fill = queue(path, n)
    fill()
    store.close()
    make_due_sqlite(path)
    from payretry.store.sql import open_store

    store = open_store(sqlite_url(path))
    runner = Runner(
        store, RetryPolicy.standard(), SimulatedProcessor(success_rate=1.0), clock=utcnow
    )
    return store, runner.run_due


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("what", choices=("run-due", "queue"))
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=25, help="lines of each listing (25)")
    parser.add_argument("--pyinstrument", action="store_true", help="pyinstrument, not cProfile")
    parser.add_argument("--save", type=Path, help="write the cProfile data here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="payretry-profile-") as tmp:
        path = Path(tmp) / "profile.db"
        store, work = (run_due if args.what == "run-due" else queue)(path, args.jobs)
        started = time.perf_counter()
        if args.pyinstrument:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.001)
            profiler.start()
            work()
            profiler.stop()
            took = time.perf_counter() - started
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        else:
            profile = cProfile.Profile()
            profile.enable()
            work()
            profile.disable()
            took = time.perf_counter() - started
            if args.save:
                profile.dump_stats(args.save)
            for order in ("cumulative", "tottime"):
                out = io.StringIO()
                stats = pstats.Stats(profile, stream=out).strip_dirs().sort_stats(order)
                stats.print_stats(args.top)
                print(f"== {args.what}, {args.jobs:,} jobs, sorted by {order} ==")
                print(out.getvalue().split("\n", 4)[-1].strip("\n"))
                print()
        store.close()
    print(f"{args.what}: {args.jobs:,} jobs in {took:.2f} s under the profiler")
    return 0


if __name__ == "__main__":
    sys.exit(main())
