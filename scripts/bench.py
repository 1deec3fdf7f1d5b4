#!/usr/bin/env python3
"""payretry's benchmark: every figure beside a reference measured in the same run.

Every side runs as a whole process (the real `payretry` command line; the references each in
a process of their own), so start-up, imports and output count as they do for an operator or
a cron job. The machine may be shared and noisy: read the ratios, and the load average printed
with them.

Sections (--sections, comma-separated; default all but `statements`):

  sqlite       bulk queue and run-due of N jobs (100,000) beside the lean limit, a durable
               retry queue in plain sqlite3 (scripts/bench_sqlite_limit.py); CPU time; run-due
               peak RSS at N/10 and N
  peers        huey (SqliteHuey, one consumer) beside payretry on SQLite: enqueue and process
               of 20,000 jobs, 1 in 10 failing and rescheduled
  postgres     pgqueuer and procrastinate beside payretry on PostgreSQL, the same mix; the
               server CPU each one cost; payretry with 1 and 2 run-due processes
  concurrency  run-due --concurrency 4 against 1 thread at zero latency (SQLite, PostgreSQL)
  cli          `payretry --help`, `payretry status TXN --json` and `payretry run-due` with
               nothing due (its CPU time: a cron job's cost each minute) beside `python -c pass`
  scale        a million jobs: status, list --due, explain, stats against a thousand jobs;
               database size per job; run-due memory; purge while run-due runs, with the
               longest write-lock wait a probe process met
  rate         run-due under a rate limit with a 200 ms processor (in-process)
  statements   (in-process) payretry beside a plain sqlite3 copy of its own statements, and
               the same on PostgreSQL with 1, 2 and 4 workers: what the Python around the SQL
               costs

The peers come with the `bench` extra (pip install -e '.[bench]'); a section whose peer is
missing says so and goes on. PostgreSQL: --pg-url, else PAYRETRY_BENCH_POSTGRES_URL, else the
local `test` database; unreachable, those parts are skipped with the reason.

    .venv/bin/python scripts/bench.py                 # the full run (about 20 minutes)
    .venv/bin/python scripts/bench.py --quick         # smaller sizes (a couple of minutes)
    .venv/bin/python scripts/bench.py --sections sqlite,cli --jobs 20000
    .venv/bin/python scripts/bench.py --sections scale --scale-copies 20   # 200,000 jobs
    .venv/bin/python scripts/bench.py --json          # one JSON document on stdout
    # start-up beside another version (here main's), in the same run:
    mkdir -p /tmp/main && git archive main payretry | tar -x -C /tmp/main
    .venv/bin/python scripts/bench.py --sections cli --cli-against /tmp/main
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import cores, load_average, make_rows, say, write_jsonl  # noqa: E402

SECTIONS = ("sqlite", "peers", "postgres", "concurrency", "cli", "scale", "rate", "statements")
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s != "statements")


@dataclass(frozen=True)
class Sizes:
    jobs: int  # sqlite section
    peer_jobs: int  # peers and postgres sections
    concurrency_jobs: int
    concurrency_pg_jobs: int
    cli_runs: int
    scale_seed: int
    scale_copies: int
    scale_due: int
    scale_runs: int
    rate_jobs: int


FULL = Sizes(100_000, 20_000, 5_000, 2_000, 11, 10_000, 100, 50_000, 5, 1_000)
QUICK = Sizes(5_000, 2_000, 1_000, 500, 3, 2_000, 10, 1_000, 3, 100)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[2:]) if __doc__ else None,
    )
    p.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help=f"comma-separated, of: {', '.join(SECTIONS)} (default: all but statements)",
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes, a couple of minutes")
    p.add_argument("--jobs", type=int, help="sqlite section backlog (100,000; quick 5,000)")
    p.add_argument("--peer-jobs", type=int, help="peers and postgres jobs (20,000; quick 2,000)")
    p.add_argument(
        "--scale-copies",
        type=int,
        help="scale section: copies of its 10,000-job seed (100, a million jobs; quick 10)",
    )
    p.add_argument("--repeat", type=int, default=1, help="sqlite section runs; best is kept")
    p.add_argument("--threads", type=int, default=4, help="concurrency section threads (4)")
    p.add_argument("--pg-url", help="PostgreSQL server (default: the local `test` database)")
    p.add_argument("--workdir", type=Path, help="keep the database files here")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument(
        "--cli-against",
        type=Path,
        help="cli section: also time another payretry (a folder holding its `payretry` package)",
    )
    p.add_argument("--probe", nargs=2, type=Path, help=argparse.SUPPRESS)
    return p


def parse_sections(text: str) -> list[str]:
    """The sections asked for, in the order of SECTIONS; ValueError naming unknown ones."""
    asked = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(asked) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown section(s): {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    if not asked:
        raise ValueError("no section given")
    return [name for name in SECTIONS if name in asked]


def sizes(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    values = vars(base).copy()
    if args.jobs is not None:
        values["jobs"] = args.jobs
    if args.peer_jobs is not None:
        values["peer_jobs"] = args.peer_jobs
    if args.scale_copies is not None:
        values["scale_copies"] = args.scale_copies
    return Sizes(**values)


def header() -> str:
    c = cores()
    return (
        f"payretry benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: "
        f"{c['usable']} usable cores ({c['cpu_count']} on the machine), Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; load average "
        f"{load_average()} at the start"
    )


def run_sections(
    names: Sequence[str], size: Sizes, args: argparse.Namespace, workdir: Path
) -> tuple[dict[str, Any], list[str]]:
    result: dict[str, Any] = {"cores": cores(), "sizes": vars(size)}
    texts = [header()]

    def done(name: str, text: str, started: float) -> None:
        took = time.perf_counter() - started
        texts.append(f"{text}\n({name}: {took:.0f} s; load average {load_average()})")
        say(f"{name}: done in {took:.0f} s\n{texts[-1]}")  # kept, should a later one fail

    for name in names:
        started = time.perf_counter()
        say(f"{name}: starting (load average {load_average()})")
        try:
            run_section(name, size, args, workdir, result, done, started)
        except (Exception, SystemExit) as exc:  # one failed section does not lose the others
            result[name] = {"error": str(exc)}
            done(name, f"{name}: FAILED: {exc}", started)
    return result, texts


def run_section(
    name: str,
    size: Sizes,
    args: argparse.Namespace,
    workdir: Path,
    result: dict[str, Any],
    done: Callable[[str, str, float], None],
    started: float,
) -> None:
    if name == "sqlite":
        import bench_sqlite

        result[name] = bench_sqlite.sqlite_section(workdir, size.jobs, args.repeat)
        done(name, bench_sqlite.render_sqlite(result[name]), started)
    elif name == "peers":
        import bench_sqlite

        result[name] = bench_sqlite.huey_section(workdir, size.peer_jobs)
        done(name, bench_sqlite.render_huey(result[name]), started)
    elif name == "postgres":
        import bench_pg_peers

        rows = write_jsonl(workdir / "pg-rows.jsonl", make_rows(size.peer_jobs, fail_every=10))
        result[name] = bench_pg_peers.run(rows, size.peer_jobs, args.pg_url)
        done(name, bench_pg_peers.render(result[name]), started)
    elif name == "concurrency":
        import bench_pg_peers
        import bench_sqlite

        lite = bench_sqlite.concurrency_section(workdir, size.concurrency_jobs, args.threads)
        rows = write_jsonl(workdir / "conc-pg.jsonl", make_rows(size.concurrency_pg_jobs))
        pg = bench_pg_peers.concurrency(rows, size.concurrency_pg_jobs, args.pg_url, args.threads)
        result[name] = {"sqlite": lite, "postgres": pg, "threads": args.threads}
        done(name, bench_sqlite.render_concurrency(lite, pg, args.threads), started)
    elif name == "cli":
        import bench_scale

        result[name] = bench_scale.cli(workdir, size.cli_runs, args.cli_against)
        done(name, bench_scale.render_cli(result[name]), started)
    elif name == "scale":
        import bench_scale

        result[name] = bench_scale.scale(
            workdir, size.scale_seed, size.scale_copies, size.scale_due, size.scale_runs
        )
        done(name, bench_scale.render_scale(result[name]), started)
    elif name == "rate":
        import bench_rate

        result[name] = bench_rate.run(jobs=size.rate_jobs)
        done(name, bench_rate.render(result[name]), started)
    elif name == "statements":
        import bench_postgres
        import bench_statements

        result[name] = bench_statements.run(size.jobs, args.repeat, workdir, say)
        text = bench_statements.render(result[name])
        pg_url = args.pg_url or bench_postgres.DEFAULT_URL
        import bench_pg_peers

        if bench_pg_peers.reachable(pg_url) is None:
            now = datetime.now(UTC) - timedelta(days=3)
            batch = bench_statements.runner_batch_size()
            result["statements_postgres"] = bench_postgres.run(
                make_rows(size.peer_jobs), now, batch, url=args.pg_url
            )
            text += "\n\n" + bench_postgres.render(result["statements_postgres"], cores()["usable"])
        done(name, text, started)


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.probe is not None:
        import bench_scale

        bench_scale.probe(*args.probe)
        return 0
    try:
        names = parse_sections(args.sections)
    except ValueError as exc:
        p.error(str(exc))
    size = sizes(args)
    if size.jobs < 10 or size.peer_jobs < 10 or args.repeat < 1 or args.threads < 2:
        p.error("--jobs and --peer-jobs must be at least 10, --repeat 1, --threads 2")
    if size.scale_copies < 1:
        p.error("--scale-copies must be at least 1")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result, texts = run_sections(names, size, args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="payretry-bench-") as tmp:
            result, texts = run_sections(names, size, args, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print("\n\n".join(texts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
