"""The `cli` and `scale` sections of scripts/bench.py.

cli: `payretry --help`, `payretry status TXN --json` and `payretry run-due` with nothing due
(what a cron job pays each minute), whole process, median of several runs taking turns with
`python -c pass` (the interpreter's own start): wall time, CPU time and the peak RSS of each.
The database holds a hundred jobs queued a few days ago and run to their end, so the job shown
has its attempts and nothing is due. payretry's bytecode is compiled first, as an installed
package has it (pip compiles on install): an editable install run with PYTHONDONTWRITEBYTECODE
would otherwise compile every module again in every run.

scale: two databases built the same way, one with about a thousand jobs and one with about a
million, and the commands an operator runs timed on both (whole process, median of runs taking
turns): `status`, `list --due --limit 50`, `explain`, `stats`. Then on the large one: the
database size per job; `run-due` over part of its due jobs alone, then `purge` of the million
finished jobs while a `run-due` works through the rest; meanwhile a probe process takes the
write lock (BEGIN IMMEDIATE, then ROLLBACK) every 20 ms and records how long it waited: the
longest wait a writer met, whoever held the lock (the purge, run-due, or both in turns). Beside
it, the purge's own longest hold of the lock (its `--json`: one of its jobs' batches, from
BEGIN IMMEDIATE returned to COMMIT ended). Peak RSS of each run-due. `--scale-copies` sizes
the large database (copies of the 10,000-job seed; 100 for a million jobs).

How the databases are built (untimed, and quick): a seed of jobs queued through payretry's own
`Operations.queue_many` 60 days ago and run through `Runner.run_due` with the simulated
processor (so every seed job has its attempt rows and outbox entries as payretry writes them),
then copied in SQL (INSERT ... SELECT, a new id, transaction id and idempotency key per copy)
to the size wanted; then the due jobs, queued through `queue_many` now and made due.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_common import (
    PeakRss,
    Run,
    Series,
    checkpoint,
    make_due_sqlite,
    make_rows,
    measure,
    payretry_cmd,
    payretry_env,
    say,
    script_cmd,
    sqlite_url,
)

TXN = "txn_00000005"  # a finished seed job, the same in both databases


# -- cli ----------------------------------------------------------------------------------------


def series(
    cmds: dict[str, list[str]],
    runs: int,
    env: dict[str, str],
    envs: dict[str, dict[str, str]] | None = None,
) -> dict[str, Series]:
    """Each command `runs` times, taking turns, after one warm-up run each (page cache); a
    command named in `envs` runs in that environment instead of `env`."""
    envs = envs or {}
    out = {name: Series() for name in cmds}
    for name, cmd in cmds.items():
        measure(cmd, env=envs.get(name, env))
    for _ in range(runs):
        for name, cmd in cmds.items():
            out[name].runs.append(measure(cmd, env=envs.get(name, env)))
    return out


def _figures(found: dict[str, Series]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "median_ms": round(s.median_wall * 1e3, 1),
            "median_cpu_ms": round(s.median_cpu * 1e3, 1),
            "peak_rss_mib": round(s.peak_rss, 1),
        }
        for name, s in found.items()
    }


def cli(workdir: Path, runs: int, against: Path | None = None) -> dict[str, Any]:
    """The cli section. With `against` (a folder holding another payretry's `payretry`
    package, e.g. `git archive main payretry | tar -x -C DIR`), the same commands of that
    version run too, taking turns with this one, as `... (against)`."""
    import compileall

    import payretry
    from payretry.domain.policy import RetryPolicy
    from payretry.processors.simulated import SimulatedProcessor
    from payretry.service.intake import new_job
    from payretry.service.operations import Operations
    from payretry.service.runner import Runner
    from payretry.store.sql import open_store

    db = workdir / "cli.db"
    for old in db.parent.glob(db.name + "*"):
        old.unlink()
    store = open_store(sqlite_url(db))
    policy = RetryPolicy.standard()
    then = datetime.now(UTC) - timedelta(days=5)
    try:
        rows = make_rows(100)
        Operations(store, policy).queue_many(
            [(n, new_job(row, now=then)) for n, row in enumerate(rows, 1)], then
        )
        later = then + timedelta(days=3)  # every first retry is due by then
        Runner(store, policy, SimulatedProcessor(success_rate=1.0), clock=lambda: later).run_due()
    finally:
        store.close()
    checkpoint(db)
    compileall.compile_dir(Path(payretry.__file__).parent, quiet=1)
    env = payretry_env()
    url = sqlite_url(db)
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "payretry --help": [*payretry_cmd(), "--help"],
        "payretry status TXN --json": [*payretry_cmd(), "--db", url, "status", TXN, "--json"],
        "payretry run-due (nothing due)": [*payretry_cmd(), "--db", url, "run-due"],
    }
    envs: dict[str, dict[str, str]] = {}
    if against is not None:
        compileall.compile_dir(against / "payretry", quiet=1)
        other = {**env, "PYTHONPATH": str(against)}
        # -P: the current folder (maybe this checkout) stays off sys.path, so PYTHONPATH wins
        run_other = [sys.executable, "-P", "-c", "from payretry.cli import main; main()"]
        for name, cmd in list(cmds.items())[1:]:
            cmds[f"{name} (against)"] = [*run_other, *cmd[1:]]
            envs[f"{name} (against)"] = other
    shown = measure(cmds["payretry status TXN --json"], env=env, capture=True)
    attempts = len(json.loads(shown.out)["attempts"])
    idle = measure(cmds["payretry run-due (nothing due)"], env=env, capture=True)
    if "Processed 0 job(s)" not in idle.out:
        raise SystemExit(f"run-due found work in the cli database: {idle.out[-500:]}")
    return {
        "runs": runs,
        "status_attempts": attempts,
        "against": str(against) if against is not None else None,
        "commands": _figures(series(cmds, runs, env, envs)),
    }


def render_cli(result: dict[str, Any]) -> str:
    c = result["commands"]
    base = c["python -c pass"]
    lines = [
        f"CLI, whole process, median of {result['runs']} runs taking turns (status shows a job "
        f"with {result.get('status_attempts', '?')} attempt(s); run-due finds nothing due)",
        "",
        "| command | median | CPU | peak RSS | x python -c pass | goal |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    goals = {"payretry --help": 120, "payretry status TXN --json": 400}
    for name, f in c.items():
        goal = goals.get(name)
        verdict = ""
        if goal is not None:
            verdict = f"<= {goal} ms: {'met' if f['median_ms'] <= goal else 'NOT met'}"
        ratio = f["median_ms"] / base["median_ms"] if base["median_ms"] else float("nan")
        lines.append(
            f"| `{name}` | {f['median_ms']:,.0f} ms | {f['median_cpu_ms']:,.0f} ms "
            f"| {f['peak_rss_mib']:.0f} MiB | {ratio:.1f} | {verdict} |"
        )
    lines.append(
        f"(python -c pass: {base['median_ms']:.0f} ms, the floor any Python CLI starts from)"
    )
    return "\n".join(lines)


# -- building the databases ---------------------------------------------------------------------


def _copy_columns(conn: sqlite3.Connection, table: str, skip: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})") if row[1] != skip]


def build(path: Path, seed: int, copies: int, due: int) -> dict[str, int]:
    """`seed` x `copies` finished jobs (finished about 57 days ago) plus `due` due jobs."""
    from payretry.domain.policy import RetryPolicy
    from payretry.processors.simulated import SimulatedProcessor
    from payretry.service.intake import new_job
    from payretry.service.operations import Operations
    from payretry.service.runner import Runner
    from payretry.store.sql import open_store

    for old in path.parent.glob(path.name + "*"):
        old.unlink()
    policy = RetryPolicy.standard()
    then = datetime.now(UTC) - timedelta(days=60)
    store = open_store(sqlite_url(path))
    try:
        rows = make_rows(seed)
        Operations(store, policy).queue_many(
            [(n, new_job(row, now=then)) for n, row in enumerate(rows, 1)], then
        )
        later = then + timedelta(days=3)
        runner = Runner(store, policy, SimulatedProcessor(success_rate=1.0), clock=lambda: later)
        runner.run_due()
    finally:
        store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    (seed_jobs,) = conn.execute("SELECT max(seq) FROM retry_jobs").fetchone()
    (seed_outbox,) = conn.execute("SELECT coalesce(max(seq), 0) FROM retry_outbox").fetchone()
    jobs = _copy_columns(conn, "retry_jobs", "seq")
    attempts = _copy_columns(conn, "retry_attempts", "id")
    outbox = _copy_columns(conn, "retry_outbox", "seq")
    new_id = "substr({c}, 1, 26) || printf('%06x', :k)"

    def expr(column: str) -> str:
        if column == "id":
            return new_id.format(c="id")
        if column == "transaction_id":
            return "transaction_id || '.' || :k"
        return column

    job_sql = (
        f"INSERT INTO retry_jobs ({', '.join(jobs)}) SELECT {', '.join(map(expr, jobs))}"
        " FROM retry_jobs WHERE seq <= :seed"
    )
    attempt_expr = {
        "job_seq": "n.seq",
        "idempotency_key": "'payretry:' || n.id || ':' || a.number",
    }
    attempt_sql = (
        f"INSERT INTO retry_attempts ({', '.join(attempts)}) SELECT "
        + ", ".join(attempt_expr.get(c, f"a.{c}") for c in attempts)
        + " FROM retry_attempts a JOIN retry_jobs o ON o.seq = a.job_seq"
        f" JOIN retry_jobs n ON n.id = {new_id.format(c='o.id')} WHERE a.job_seq <= :seed"
    )
    outbox_sql = (
        f"INSERT INTO retry_outbox ({', '.join(outbox)}) SELECT "
        + ", ".join(new_id.format(c="job_id") if c == "job_id" else c for c in outbox)
        + " FROM retry_outbox WHERE seq <= :outbox"
    )
    for k in range(1, copies):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(job_sql, {"k": k, "seed": seed_jobs})
        conn.execute(attempt_sql, {"k": k, "seed": seed_jobs})
        conn.execute(outbox_sql, {"k": k, "outbox": seed_outbox})
        conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    store = open_store(sqlite_url(path))
    try:
        now = datetime.now(UTC)
        rows = make_rows(due, seed=7)
        for row in rows:
            row["transaction_id"] = "due_" + row["transaction_id"]
        Operations(store, policy).queue_many(
            [(n, new_job(row, now=now)) for n, row in enumerate(rows, 1)], now
        )
    finally:
        store.close()
    make_due_sqlite(path)
    conn = sqlite3.connect(path)
    counts = dict(conn.execute("SELECT state, count(*) FROM retry_jobs GROUP BY state"))
    conn.close()
    return counts


# -- the probe ----------------------------------------------------------------------------------


def probe(path: Path, stop: Path) -> None:
    """Take the write lock every 20 ms until `stop` exists; print the waits (JSON). Once a
    file `stop` with the suffix .alone exists (the other writer beside the one measured has
    ended), the waits are also kept apart: what the measured writer alone made others wait."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=600)
    conn.execute("PRAGMA busy_timeout = 600000")
    alone_from = stop.with_suffix(".alone")
    waits: list[float] = []
    alone: list[float] = []
    long: list[tuple[float, float]] = []  # (wall-clock start, wait) of each wait over 0.5 s
    while not stop.exists():
        at, start = time.time(), time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        waited = time.perf_counter() - start
        waits.append(waited)
        if alone or alone_from.exists():
            alone.append(waited)
        if waited > 0.5:
            long.append((round(at, 3), round(waited, 3)))
        conn.execute("ROLLBACK")
        time.sleep(0.02)
    conn.close()
    waits.sort()
    print(
        json.dumps(
            {
                "samples": len(waits),
                "max_wait_s": waits[-1] if waits else 0.0,
                "p99_wait_s": waits[int(len(waits) * 0.99)] if waits else 0.0,
                "long_waits": long,  # when they began: to set beside the writers' own logs
                "alone_samples": len(alone),
                "alone_max_wait_s": max(alone, default=0.0),
            }
        )
    )


class Probe:
    def __init__(self, db: Path) -> None:
        self.db, self.stop = db, db.with_suffix(".stop")
        self.alone = self.stop.with_suffix(".alone")

    def __enter__(self) -> Probe:
        import subprocess

        self.stop.unlink(missing_ok=True)
        self.alone.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            script_cmd("bench.py", "--probe", str(self.db), str(self.stop)),
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.touch()
        out, _ = self.proc.communicate()
        self.stop.unlink(missing_ok=True)
        self.alone.unlink(missing_ok=True)
        self.result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])


class Background:
    """A command started now and followed on a thread of its own: its wall time to exit, CPU
    and peak RSS, while the caller times something else. `ended`: a file made once it exits."""

    def __init__(
        self, cmd: list[str], env: dict[str, str], log: Path, ended: Path | None = None
    ) -> None:
        import subprocess
        import threading

        self.ended = ended
        self.log = open(log, "w+b")  # noqa: SIM115 (closed in wait)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.watch = PeakRss(self.proc.pid)
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self) -> None:
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.wall = time.perf_counter() - self.started
        self.code = os.waitstatus_to_exitcode(status)
        self.cpu = usage.ru_utime + usage.ru_stime
        if self.ended is not None:
            self.ended.touch()

    def wait(self) -> Run:
        self.thread.join()
        self.log.seek(0)
        err = self.log.read().decode(errors="replace")[-2000:]
        self.log.close()
        return Run(self.wall, self.cpu, self.watch.stop(), self.code, "", err)


# -- the section --------------------------------------------------------------------------------


def scale(workdir: Path, big_seed: int, big_copies: int, due: int, runs: int) -> dict[str, Any]:
    small_db, big_db = workdir / "scale-small.db", workdir / "scale-big.db"
    say(f"scale: building {big_seed * big_copies:,} finished + {due:,} due jobs")
    started = time.perf_counter()
    small_counts = build(small_db, 1000, 1, max(1, due * 1000 // (big_seed * big_copies)))
    big_counts = build(big_db, big_seed, big_copies, due)
    built_s = time.perf_counter() - started
    env = payretry_env()
    small_n, big_n = sum(small_counts.values()), sum(big_counts.values())
    say(f"scale: built in {built_s:.0f} s; timing the operator's commands")

    def cmd(db: Path, *args: str) -> list[str]:
        return [*payretry_cmd(), "--db", sqlite_url(db), *args]

    commands: dict[str, Callable[[Path], list[str]]] = {
        "status TXN --json": lambda db: cmd(db, "status", TXN, "--json"),
        "list --due --limit 50 --json": lambda db: cmd(
            db, "list", "--due", "--limit", "50", "--json"
        ),
        "explain TXN": lambda db: cmd(db, "explain", TXN),
        "stats --json": lambda db: cmd(db, "stats", "--json"),
    }
    reads: dict[str, Any] = {}
    for name, make in commands.items():
        found = series({"small": make(small_db), "big": make(big_db)}, runs, env)
        reads[name] = {
            "small_ms": round(found["small"].median_wall * 1e3, 1),
            "big_ms": round(found["big"].median_wall * 1e3, 1),
            "ratio": round(found["big"].median_wall / found["small"].median_wall, 2),
            "big_rss_mib": round(found["big"].peak_rss, 1),
        }
    checkpoint(big_db)
    size = big_db.stat().st_size

    say("scale: run-due alone, then purge while run-due goes on")
    first = max(1, due // 4)
    with Probe(big_db) as alone_probe:
        alone = measure(cmd(big_db, "run-due", "--limit", str(first)), env=env)
    with Probe(big_db) as purge_probe:
        log = workdir / "run-due-during-purge.log"
        runner = Background(cmd(big_db, "run-due"), env, log, ended=purge_probe.alone)
        purge = measure(
            cmd(big_db, "purge", "--older-than", "30d", "--json"), env=env, capture=True
        )
        during = runner.wait()
    purged = json.loads(purge.out)
    conn = sqlite3.connect(big_db)
    after = dict(conn.execute("SELECT state, count(*) FROM retry_jobs GROUP BY state"))
    conn.close()
    small_run = measure(cmd(small_db, "run-due"), env=env)
    return {
        "build_s": round(built_s, 1),
        "small_jobs": small_n,
        "big_jobs": big_n,
        "big_states": big_counts,
        "reads": reads,
        "db_bytes": size,
        "bytes_per_job": round(size / big_n),
        "run_due_alone": {
            "jobs": first,
            "wall_s": round(alone.wall, 2),
            "jobs_per_s": round(first / alone.wall, 1),
            "peak_rss_mib": round(alone.rss_mib, 1),
            "probe_max_wait_s": round(alone_probe.result["max_wait_s"], 3),
        },
        "purge": {
            "removed": purged.get("jobs"),
            "wall_s": round(purge.wall, 2),
            "jobs_per_s": round((purged.get("jobs") or 0) / purge.wall, 1),
            # the purge's own measure: its batches' longest hold, BEGIN returned to COMMIT end
            "longest_hold_s": round((purged.get("longest_hold_ms") or 0.0) / 1e3, 3),
            "transactions": purged.get("transactions"),
            "probe_max_wait_s": round(purge_probe.result["max_wait_s"], 3),
            "probe_p99_wait_s": round(purge_probe.result["p99_wait_s"], 3),
            "probe_samples": purge_probe.result["samples"],
            "probe_long_waits": purge_probe.result["long_waits"][:50],
            # once run-due had ended: what the purge alone made the probe wait
            "probe_alone_max_wait_s": round(purge_probe.result.get("alone_max_wait_s", 0.0), 3),
            "probe_alone_samples": purge_probe.result.get("alone_samples", 0),
            "peak_rss_mib": round(purge.rss_mib, 1),
        },
        "run_due_during_purge": {
            "jobs": due - first,
            "exit_code": during.code,
            "wall_s": round(during.wall, 2),
            "jobs_per_s": round((due - first) / during.wall, 1),
            "peak_rss_mib": round(during.rss_mib, 1),
            "stderr_tail": during.err.strip()[-300:],
            "ended_before_purge": during.wall < purge.wall,
        },
        "states_after": after,
        "run_due_small_peak_rss_mib": round(small_run.rss_mib, 1),
    }


def render_scale(r: dict[str, Any]) -> str:
    lines = [
        f"Scale: {r['big_jobs']:,} jobs beside {r['small_jobs']:,} (built in {r['build_s']} s), "
        "whole process, median",
        "",
        f"| command | {r['small_jobs']:,} jobs | {r['big_jobs']:,} jobs | ratio | goal |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, f in r["reads"].items():
        if name.startswith("stats"):
            goal = f"< 1 s: {'met' if f['big_ms'] < 1000 else 'NOT met'}"
        else:
            goal = f"within 20%: {'met' if f['ratio'] <= 1.2 else 'NOT met'}"
        lines.append(
            f"| `{name}` | {f['small_ms']:,.0f} ms | {f['big_ms']:,.0f} ms | {f['ratio']:.2f} "
            f"| {goal} |"
        )
    a, p, d = r["run_due_alone"], r["purge"], r["run_due_during_purge"]
    peak = max(a["peak_rss_mib"], d["peak_rss_mib"])
    lines += [
        "",
        f"database size: {r['db_bytes'] / 2**20:,.0f} MiB, {r['bytes_per_job']:,} bytes per job "
        "(job, attempts, outbox entries and indexes)",
        f"run-due alone: {a['jobs']:,} jobs at {a['jobs_per_s']:,.0f} jobs/s, peak RSS "
        f"{a['peak_rss_mib']:.0f} MiB (at {r['small_jobs']:,} jobs: "
        f"{r['run_due_small_peak_rss_mib']:.0f} MiB; goal flat and < 150 MB: "
        f"{'met' if peak < 150 else 'NOT met'}); longest write-lock wait of the probe "
        f"{a['probe_max_wait_s'] * 1e3:,.0f} ms",
        f"purge: {p['removed']:,} finished jobs in {p['wall_s']:.1f} s "
        f"({p['jobs_per_s']:,.0f} jobs/s); longest write-lock hold of its batches "
        f"{p['longest_hold_s'] * 1e3:,.0f} ms ({p['transactions'] or 0:,} transactions; "
        f"goal <= 1 s: {'met' if p['longest_hold_s'] <= 1 else 'NOT met'}); longest "
        "write-lock wait of the "
        "probe meanwhile "
        f"{p['probe_max_wait_s'] * 1e3:,.0f} ms (p99 {p['probe_p99_wait_s'] * 1e3:,.0f} ms, "
        f"{p['probe_samples']:,} samples; goal <= 1 s: "
        f"{'met' if p['probe_max_wait_s'] <= 1 else 'NOT met'}; "
        f"{len(p['probe_long_waits'])} wait(s) over 0.5 s; "
        + (
            f"once run-due had ended, longest {p['probe_alone_max_wait_s'] * 1e3:,.0f} ms of "
            f"{p['probe_alone_samples']:,} samples)"
            if p["probe_alone_samples"]
            else "run-due ran to the purge's end)"
        ),
        f"run-due during the purge: {d['jobs']:,} jobs at {d['jobs_per_s']:,.0f} jobs/s "
        f"(exit {d['exit_code']}; ended {'before' if d['ended_before_purge'] else 'after'} the "
        f"purge), peak RSS {d['peak_rss_mib']:.0f} MiB",
    ]
    if d["exit_code"]:
        lines.append(f"  run-due said: {d['stderr_tail']}")
    return "\n".join(lines)
