"""The `sqlite`, `peers` (huey) and `concurrency` (SQLite half) sections of scripts/bench.py,
every side one whole process: the real `payretry` command, the lean limit
(scripts/bench_sqlite_limit.py) and huey (scripts/bench_peers.py), on the same rows.

sqlite: bulk queue of N rows (`payretry queue --from-file`, one transaction) and run-due over
the N due jobs with the simulated processor at zero latency, beside the lean limit doing the
same job on the same rows; the lean limit twice: with the rows' own priorities (by amount,
so a claim touches rows scattered over the table, as payretry's does) and with the rows
written in the order they are claimed (the shape of ../shared/bench/sqlite_limit.py's
synthetic rows, which flatters every queue). Wall clock and CPU time; peak RSS of run-due at
N/10 and N jobs. Each side's schema is made before its queue is timed; each side's jobs are
made due (untimed) before run-due.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bench_peers
from bench_common import (
    Run,
    count_states,
    make_due_sqlite,
    make_rows,
    measure,
    payretry_cmd,
    payretry_env,
    rate,
    say,
    script_cmd,
    sqlite_url,
    write_jsonl,
)

FLAT_SLACK_MIB = 16.0


def _clear(db: Path) -> None:
    for old in db.parent.glob(db.name + "*"):
        old.unlink()


def payretry_queue(db: Path, rows_file: Path) -> Run:
    _clear(db)
    env = payretry_env()
    measure([*payretry_cmd(), "--db", sqlite_url(db), "db", "upgrade"], env=env)
    return measure(
        [*payretry_cmd(), "--db", sqlite_url(db), "queue", "--from-file", str(rows_file)], env=env
    )


def payretry_run_due(db: Path, *extra: str) -> Run:
    make_due_sqlite(db)
    return measure([*payretry_cmd(), "--db", sqlite_url(db), "run-due", *extra], env=payretry_env())


def lean_queue(db: Path, rows_file: Path, *extra: str) -> Run:
    _clear(db)
    return measure(script_cmd("bench_sqlite_limit.py", "queue", str(db), str(rows_file), *extra))


def lean_run_due(db: Path) -> tuple[Run, dict[str, int]]:
    measure(script_cmd("bench_sqlite_limit.py", "make-due", str(db)))
    run = measure(script_cmd("bench_sqlite_limit.py", "run-due", str(db)), capture=True)
    return run, json.loads(run.out.strip().splitlines()[-1])


def _side(runs: list[Run], n: int) -> dict[str, Any]:
    best = min(runs, key=lambda r: r.wall)
    return {
        "jobs_per_s": round(rate(n, best.wall), 1),
        "wall_s": round(best.wall, 3),
        "cpu_s": round(best.cpu, 3),
        "peak_rss_mib": round(best.rss_mib, 1),
        "runs_s": [round(r.wall, 3) for r in runs],
    }


def sqlite_section(workdir: Path, n: int, repeat: int) -> dict[str, Any]:
    rows_file = write_jsonl(workdir / "rows.jsonl", make_rows(n))
    sides: dict[str, dict[str, list[Run]]] = {
        name: {"queue": [], "run_due": []} for name in ("payretry", "lean", "lean_ordered")
    }
    for _ in range(repeat):
        for name, extra in (("lean", ()), ("lean_ordered", ("--in-claim-order",))):
            db = workdir / f"{name}.db"
            sides[name]["queue"].append(lean_queue(db, rows_file, *extra))
            run, counts = lean_run_due(db)
            if counts["processed"] != n:
                raise SystemExit(f"the lean limit processed {counts['processed']} of {n}")
            sides[name]["run_due"].append(run)
            say(f"sqlite: {name} run-due {rate(n, run.wall):,.0f} jobs/s")
        db = workdir / "payretry.db"
        sides["payretry"]["queue"].append(payretry_queue(db, rows_file))
        say(f"sqlite: payretry queue {rate(n, sides['payretry']['queue'][-1].wall):,.0f} jobs/s")
        run = payretry_run_due(db)
        if count_states(db) != {"succeeded": n}:
            raise SystemExit(f"payretry run-due left {count_states(db)} of {n}")
        sides["payretry"]["run_due"].append(run)
        say(f"sqlite: payretry run-due {rate(n, run.wall):,.0f} jobs/s")
    memory = []
    tenth = max(1, n // 10)
    small_rows = write_jsonl(workdir / "rows-tenth.jsonl", make_rows(tenth))
    small_db = workdir / "payretry-tenth.db"
    payretry_queue(small_db, small_rows)
    small = payretry_run_due(small_db)
    memory.append({"jobs": tenth, "peak_rss_mib": round(small.rss_mib, 1)})
    best = min(sides["payretry"]["run_due"], key=lambda r: r.wall)
    memory.append({"jobs": n, "peak_rss_mib": round(best.rss_mib, 1)})
    for name in ("payretry.db", "lean.db", "lean_ordered.db", "payretry-tenth.db"):
        _clear(workdir / name)
    return {
        "jobs": n,
        "repeat": repeat,
        **{
            f"{what}_{name}": _side(sides[name][what], n)
            for name in sides
            for what in ("queue", "run_due")
        },
        "peak_rss": memory,
    }


def render_sqlite(r: dict[str, Any]) -> str:
    n = r["jobs"]
    lines = [
        f"SQLite, {n:,} jobs, whole process (best of {r['repeat']}); lean = "
        "scripts/bench_sqlite_limit.py on the same rows",
        "",
        "| measure | payretry | lean limit | ratio | CPU ratio | lean, rows in claim order "
        "| ratio |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for what, label in (
        ("queue", f"bulk queue, {n:,} jobs (one transaction)"),
        ("run_due", f"run-due, {n:,} due jobs, zero latency"),
    ):
        mine, lean, ordered = r[f"{what}_payretry"], r[f"{what}_lean"], r[f"{what}_lean_ordered"]
        lines.append(
            f"| {label} | {mine['jobs_per_s']:,.0f} jobs/s | {lean['jobs_per_s']:,.0f} jobs/s "
            f"| {lean['wall_s'] / mine['wall_s']:.3f} | {lean['cpu_s'] / mine['cpu_s']:.3f} "
            f"| {ordered['jobs_per_s']:,.0f} jobs/s | {ordered['wall_s'] / mine['wall_s']:.3f} |"
        )
    q, d = r["queue_payretry"], r["run_due_payretry"]
    lines.append(
        f"goals: bulk queue >= 1/3 of the lean limit: "
        f"{'met' if r['queue_lean']['wall_s'] / q['wall_s'] >= 1 / 3 else 'NOT met'}; "
        f"run-due >= 1/8: "
        f"{'met' if r['run_due_lean']['wall_s'] / d['wall_s'] >= 1 / 8 else 'NOT met'}"
    )
    lines.append(
        f"CPU seconds: queue payretry {q['cpu_s']:.2f} / lean {r['queue_lean']['cpu_s']:.2f}; "
        f"run-due payretry {d['cpu_s']:.2f} / lean {r['run_due_lean']['cpu_s']:.2f} "
        f"(wall {d['wall_s']:.2f} / {r['run_due_lean']['wall_s']:.2f})"
    )
    small, big = r["peak_rss"]
    growth = big["peak_rss_mib"] - small["peak_rss_mib"]
    lines.append(
        f"run-due peak RSS: {small['peak_rss_mib']:.0f} MiB at {small['jobs']:,} jobs, "
        f"{big['peak_rss_mib']:.0f} MiB at {big['jobs']:,} ({growth:+.1f} MiB; flat within "
        f"{FLAT_SLACK_MIB:.0f} MiB: {'met' if growth <= FLAT_SLACK_MIB else 'NOT met'})"
    )
    return "\n".join(lines)


# -- huey ---------------------------------------------------------------------------------------


def huey_section(workdir: Path, n: int) -> dict[str, Any]:
    if not bench_peers.installed("huey"):
        return {"skipped": bench_peers.missing_message("huey")}
    rows_file = write_jsonl(workdir / "peer-rows.jsonl", make_rows(n, fail_every=10))
    db = workdir / "huey.db"
    _clear(db)
    enqueue = measure(script_cmd("bench_peers.py", "huey-enqueue", str(db), str(rows_file)))
    process = measure(script_cmd("bench_peers.py", "huey-process", str(db), str(n)), capture=True)
    done = json.loads(process.out.strip().splitlines()[-1])
    if done["processed"] != n:
        raise SystemExit(f"huey processed {done['processed']} of {n}")
    say(f"peers: huey process {rate(n, process.wall):,.0f} jobs/s")
    mine_db = workdir / "payretry-peers.db"
    queue = payretry_queue(mine_db, rows_file)
    run_due = payretry_run_due(mine_db)
    states = count_states(mine_db)
    if states.get("succeeded", 0) + states.get("scheduled", 0) != n:
        raise SystemExit(f"payretry left {states} of {n}")
    say(f"peers: payretry process {rate(n, run_due.wall):,.0f} jobs/s")
    _clear(db)
    _clear(mine_db)
    return {
        "jobs": n,
        "huey": {"enqueue": _side([enqueue], n), "process": _side([process], n)},
        "payretry": {"enqueue": _side([queue], n), "process": _side([run_due], n)},
        "rescheduled": {"huey": done["rescheduled"], "payretry": states.get("scheduled", 0)},
    }


def render_huey(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"Peers on SQLite: {r['skipped']}"
    n = r["jobs"]
    lines = [
        f"Peers on SQLite, {n:,} jobs (1 in 10 fails once and is rescheduled), whole process; "
        "huey: SqliteHuey (WAL, synchronous=NORMAL as payretry), one consumer thread",
        "",
        "| measure | payretry | huey | ratio (payretry/huey) | CPU payretry | CPU huey |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for what, label in (
        ("enqueue", "enqueue (payretry: one transaction; huey: one per task)"),
        ("process", "process"),
    ):
        mine, theirs = r["payretry"][what], r["huey"][what]
        lines.append(
            f"| {label} | {mine['jobs_per_s']:,.0f} jobs/s | {theirs['jobs_per_s']:,.0f} jobs/s "
            f"| {theirs['wall_s'] / mine['wall_s']:.2f} | {mine['cpu_s']:.2f} s "
            f"| {theirs['cpu_s']:.2f} s |"
        )
    lines.append(
        f"rescheduled: payretry {r['rescheduled']['payretry']:,}, huey {r['rescheduled']['huey']:,}"
    )
    return "\n".join(lines)


# -- concurrency, SQLite ------------------------------------------------------------------------


# The two sides of the concurrency section take turns this many times, the best of each kept:
# a run of a few thousand jobs lasts a second or two, less than this VM's own swings.
CONCURRENCY_TURNS = 3


def concurrency_section(workdir: Path, n: int, threads: int) -> dict[str, Any]:
    rows_file = write_jsonl(workdir / "conc-rows.jsonl", make_rows(n))
    out: dict[str, Any] = {"jobs": n, "turns": CONCURRENCY_TURNS}
    for _ in range(CONCURRENCY_TURNS):
        for count in (1, threads):
            db = workdir / f"conc-{count}.db"
            payretry_queue(db, rows_file)
            wall = payretry_run_due(db, "--concurrency", str(count)).wall
            out[count] = min(wall, out.get(count, wall))
            if count_states(db) != {"succeeded": n}:
                raise SystemExit(f"run-due --concurrency {count} left {count_states(db)}")
            _clear(db)
    return out


def render_concurrency(sqlite: dict[str, Any], pg: dict[str, Any] | None, threads: int) -> str:
    lines = [
        f"run-due --concurrency {threads} against 1 thread, zero latency, whole process "
        f"(the two in turns, best of {CONCURRENCY_TURNS})",
        "",
        f"| database | jobs | 1 thread | {threads} threads | ratio | goal >= 0.9 |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, r in (("SQLite", sqlite), ("PostgreSQL", pg)):
        if r is None:
            continue
        if "skipped" in r:
            lines.append(f"| {name} | | skipped: {r['skipped']} | | | |")
            continue
        n, one, many = r["jobs"], r[1], r[threads]
        ratio = one / many
        lines.append(
            f"| {name} | {n:,} | {n / one:,.0f} jobs/s | {n / many:,.0f} jobs/s | {ratio:.2f} "
            f"| {'met' if ratio >= 0.9 else 'NOT met'} |"
        )
    return "\n".join(lines)
