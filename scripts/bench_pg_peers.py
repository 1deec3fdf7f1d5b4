"""PostgreSQL section of scripts/bench.py: pgqueuer and procrastinate beside payretry (1 and 2
`payretry run-due` processes), the same rows and job mix, each enqueue and each process run one
whole process (or two) in a schema of its own; and the PostgreSQL server CPU each one cost.

Server CPU, how: every client connection of a measured run carries an application_name of its
own. While the run goes on, a sampler (its own connection, another name) reads the pids of the
backends with that name from pg_stat_activity every 10 ms and, for each, the backend's
utime+stime from /proc/<pid>/stat, keeping the last value seen; the run's "backend CPU" is
their sum. It misses at most the last 10 ms of a backend that exits (so read it over runs of
seconds), and it leaves out the server's shared processes (WAL writer, checkpointer,
autovacuum), so beside it stands the whole server's CPU over the same stretch: the
postmaster's own and its reaped children's (utime, stime, cutime, cstime of
/proc/<postmaster>/stat) plus every live child's, after minus before. That one includes other
clients of the server, so on a shared server read the backend figure. Both need the server on
this host; elsewhere they are left out. (pg_stat_statements gives statement time, not CPU, and
needs the extension preloaded.)
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bench_peers
from bench_common import (
    Run,
    measure,
    measure_many,
    payretry_cmd,
    payretry_env,
    rate,
    say,
    script_cmd,
)

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def payretry_url(url: str, schema: str, app: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}application_name={app}&options={quote(f'-csearch_path={schema}')}"


def admin(url: str, *statements: str) -> list[Any]:
    import psycopg

    out: list[Any] = []
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for statement in statements:
            cur = conn.execute(statement)  # type: ignore[arg-type,unused-ignore]
            out.append(cur.fetchall() if cur.description else None)
    return out


def reachable(url: str) -> str | None:
    """None when the server answers; else why not."""
    try:
        import psycopg

        with psycopg.connect(libpq(url), connect_timeout=3):
            return None
    except Exception as exc:  # any failure to connect means: skip the section
        return f"{type(exc).__name__}: {exc}".strip()


# -- server CPU ---------------------------------------------------------------------------------


def _proc_cpu(pid: int) -> tuple[float, float, int] | None:
    """(own utime+stime, reaped children's cutime+cstime, ppid) of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is the state (field 3); ppid is field 4, utime..cstime fields 14..17.
    own = (int(fields[11]) + int(fields[12])) / _TICK
    children = (int(fields[13]) + int(fields[14])) / _TICK
    return own, children, int(fields[1])


def _children(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _proc_cpu(int(entry))
            if info is not None and info[2] == parent:
                pids.append(int(entry))
    return pids


class ServerCpu:
    """The server CPU of one measured stretch (see the module's docstring)."""

    def __init__(self, url: str, app: str, interval: float = 0.01) -> None:
        self.url, self.app, self.interval = url, app, interval
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.postmaster: int | None = None
        self._before = 0.0

    def _server_total(self) -> float:
        assert self.postmaster is not None
        info = _proc_cpu(self.postmaster)
        if info is None:
            return 0.0
        total = info[0] + info[1]
        for child in _children(self.postmaster):
            child_info = _proc_cpu(child)
            if child_info is not None:
                total += child_info[0]
        return total

    def __enter__(self) -> ServerCpu:
        import psycopg

        self._conn = psycopg.connect(
            libpq(self.url), autocommit=True, application_name="payretry-bench-sampler"
        )
        pid = self._conn.execute("SELECT pg_backend_pid()").fetchone()
        info = _proc_cpu(int(pid[0])) if pid else None
        if info is not None:
            self.postmaster = info[2]
            self._before = self._server_total()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        rows = self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.app,)
        ).fetchall()
        for (pid,) in rows:
            info = _proc_cpu(int(pid))
            if info is not None:
                self.seen[int(pid)] = max(self.seen.get(int(pid), 0.0), info[0])

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.backends = sum(self.seen.values())
            self.server = self._server_total() - self._before
        self._conn.close()

    def figures(self) -> dict[str, float | None]:
        if self._thread is None:
            return {"backend_cpu_s": None, "server_cpu_s": None}
        return {"backend_cpu_s": round(self.backends, 2), "server_cpu_s": round(self.server, 2)}


def timed(url: str, app: str, run: Any) -> tuple[Run, dict[str, float | None]]:
    with ServerCpu(url, app) as cpu:
        result = run()
    return result, cpu.figures()


# -- the sides ----------------------------------------------------------------------------------


def _peer(peer: str, url: str, rows_file: Path, n: int) -> dict[str, Any]:
    dsn = libpq(url)
    schema = f"bench_{peer}_{uuid.uuid4().hex[:8]}"
    admin(url, f'CREATE SCHEMA "{schema}"')
    try:
        measure(script_cmd("bench_peers.py", f"{peer}-install", dsn, schema))
        app = f"bench-{peer}-enqueue"
        enqueue, enqueue_cpu = timed(
            url,
            app,
            lambda: measure(
                script_cmd("bench_peers.py", f"{peer}-enqueue", dsn, schema, app, str(rows_file))
            ),
        )
        app = f"bench-{peer}-process"
        process, process_cpu = timed(
            url,
            app,
            lambda: measure(
                script_cmd("bench_peers.py", f"{peer}-process", dsn, schema, app, str(n)),
                capture=True,
            ),
        )
        import json

        done = json.loads(process.out.strip().splitlines()[-1])
        if done["processed"] != n:
            raise SystemExit(f"{peer} processed {done['processed']} of {n}")
        return {
            "enqueue": _side(enqueue, n, enqueue_cpu),
            "process": {**_side(process, n, process_cpu), "rescheduled": done["rescheduled"]},
        }
    finally:
        admin(url, f'DROP SCHEMA "{schema}" CASCADE')


def _side(run: Run, n: int, cpu: dict[str, float | None]) -> dict[str, Any]:
    return {
        "jobs_per_s": round(rate(n, run.wall), 1),
        "wall_s": round(run.wall, 3),
        "client_cpu_s": round(run.cpu, 2),
        "peak_rss_mib": round(run.rss_mib, 1),
        **cpu,
    }


def _payretry_states(url: str, schema: str) -> dict[str, int]:
    rows = admin(url, f'SELECT state, count(*) FROM "{schema}".retry_jobs GROUP BY state')[0]
    return {state: int(count) for state, count in rows}


def prepare_payretry_pg(url: str, schema: str) -> None:
    """A fresh schema with payretry's own tables (untimed)."""
    admin(url, f'CREATE SCHEMA "{schema}"')
    db = payretry_url(url, schema, "bench-setup")
    measure([*payretry_cmd(), "--db", db, "db", "upgrade"], env=payretry_env())


def queue_payretry_pg(url: str, schema: str, rows_file: Path, app: str) -> Run:
    """`payretry queue --from-file`, timed."""
    db = payretry_url(url, schema, app)
    return measure(
        [*payretry_cmd(), "--db", db, "queue", "--from-file", str(rows_file)], env=payretry_env()
    )


def make_due_pg(url: str, schema: str) -> None:
    """Every job due now (untimed; then VACUUM ANALYZE, so the bench's own UPDATE leaves no
    dead rows behind for the claim to wade through)."""
    admin(
        url,
        f"UPDATE \"{schema}\".retry_jobs SET next_retry_at = created_at WHERE state = 'scheduled'",
        f'VACUUM ANALYZE "{schema}".retry_jobs',
    )


def run_due_payretry_pg(
    url: str, schema: str, app: str, workers: int, extra: Sequence[str] = ()
) -> Run:
    cmd = [*payretry_cmd(), "--db", payretry_url(url, schema, app), "run-due", *extra]
    return measure_many([cmd] * workers, env=payretry_env())


def _payretry(url: str, rows_file: Path, n: int, workers: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"process": {}}
    for count in workers:
        schema = f"bench_payretry_{uuid.uuid4().hex[:8]}"
        try:
            app = f"bench-payretry-enqueue-{count}"
            prepare_payretry_pg(url, schema)
            enqueue, enqueue_cpu = timed(
                url, app, lambda s=schema, a=app: queue_payretry_pg(url, s, rows_file, a)
            )
            make_due_pg(url, schema)
            if "enqueue" not in out:
                out["enqueue"] = _side(enqueue, n, enqueue_cpu)
            app = f"bench-payretry-process-{count}"
            process, process_cpu = timed(
                url, app, lambda s=schema, a=app, c=count: run_due_payretry_pg(url, s, a, c)
            )
            states = _payretry_states(url, schema)
            processed = states.get("succeeded", 0) + states.get("scheduled", 0)
            if processed != n or states.get("running"):
                raise SystemExit(f"payretry x{count} left {states} of {n}")
            out["process"][count] = {
                **_side(process, n, process_cpu),
                "rescheduled": states.get("scheduled", 0),
            }
        finally:
            admin(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return out


def run(rows_file: Path, n: int, url: str | None = None) -> dict[str, Any]:
    url = url or os.environ.get("PAYRETRY_BENCH_POSTGRES_URL") or DEFAULT_URL
    why = reachable(url)
    if why is not None:
        return {"skipped": f"PostgreSQL at {url} is not reachable ({why})"}
    result: dict[str, Any] = {"jobs": n, "peers": {}}
    for peer in ("pgqueuer", "procrastinate"):
        if not bench_peers.installed(peer):
            result["peers"][peer] = {"skipped": bench_peers.missing_message(peer)}
            say(f"postgres: {bench_peers.missing_message(peer)}")
            continue
        say(f"postgres: {peer}, {n:,} jobs")
        result["peers"][peer] = _peer(peer, url, rows_file, n)
    say(f"postgres: payretry, {n:,} jobs, 1 and 2 run-due processes")
    result["payretry"] = _payretry(url, rows_file, n, (1, 2))
    return result


CONCURRENCY_TURNS = 3  # as in bench_sqlite.py


def concurrency(rows_file: Path, n: int, url: str | None, threads: int) -> dict[str, Any]:
    """`run-due --concurrency 1` and `--concurrency N` at zero latency on PostgreSQL."""
    url = url or os.environ.get("PAYRETRY_BENCH_POSTGRES_URL") or DEFAULT_URL
    why = reachable(url)
    if why is not None:
        return {"skipped": f"PostgreSQL at {url} is not reachable ({why})"}
    out: dict[str, Any] = {"jobs": n, "turns": CONCURRENCY_TURNS}
    for _ in range(CONCURRENCY_TURNS):  # the two sides in turns, the best of each kept
        for count in (1, threads):
            schema = f"bench_conc_{uuid.uuid4().hex[:8]}"
            try:
                prepare_payretry_pg(url, schema)
                queue_payretry_pg(url, schema, rows_file, "bench-conc-queue")
                make_due_pg(url, schema)
                wall = run_due_payretry_pg(
                    url, schema, "bench-conc", 1, ("--concurrency", str(count))
                ).wall
                out[count] = min(wall, out.get(count, wall))
            finally:
                admin(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return out


def render(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"PostgreSQL peers: skipped: {result['skipped']}"
    n = result["jobs"]
    mine = result["payretry"]
    lines = [
        f"PostgreSQL, {n:,} jobs (1 in 10 fails once and is rescheduled), whole process; "
        "server CPU = the run's backends (the whole server in brackets)",
        "",
        "| measure | payretry | peer | ratio (payretry/peer) | server CPU payretry | server CPU "
        "peer |",
        "|---|--:|--:|--:|--:|--:|",
    ]

    def cpu(side: dict[str, Any]) -> str:
        if side.get("backend_cpu_s") is None:
            return "n/a"
        return f"{side['backend_cpu_s']:.2f} s ({side['server_cpu_s']:.2f} s)"

    one = mine["process"][1]
    for peer, figures in result["peers"].items():
        if "skipped" in figures:
            lines.append(f"| {peer} | | skipped: {figures['skipped']} | | | |")
            continue
        for what, side, theirs in (
            ("enqueue", mine["enqueue"], figures["enqueue"]),
            ("process, 1 worker", one, figures["process"]),
        ):
            lines.append(
                f"| {what} vs {peer} | {side['jobs_per_s']:,.0f} jobs/s "
                f"| {theirs['jobs_per_s']:,.0f} jobs/s "
                f"| {side['jobs_per_s'] / theirs['jobs_per_s']:.2f} | {cpu(side)} "
                f"| {cpu(theirs)} |"
            )
    two = mine["process"][2]
    lines += [
        "",
        f"payretry run-due, 1 process: {one['jobs_per_s']:,.0f} jobs/s, 2 processes: "
        f"{two['jobs_per_s']:,.0f} jobs/s: {two['jobs_per_s'] / one['jobs_per_s']:.2f}x "
        "(goal >= 1.3x)",
    ]
    totals = []
    for name, side in [("payretry", None), *result["peers"].items()]:
        if side is None:
            enq, proc = mine["enqueue"], one
        elif "skipped" in side:
            continue
        else:
            enq, proc = side["enqueue"], side["process"]
        if enq.get("backend_cpu_s") is None:
            continue
        backend = enq["backend_cpu_s"] + proc["backend_cpu_s"]
        totals.append(
            f"{name} {backend:.2f} s = {1e3 * backend / n:.2f} ms/job "
            f"(whole server {enq['server_cpu_s'] + proc['server_cpu_s']:.2f} s)"
        )
    if totals:
        lines.append("server CPU for enqueue + process: " + "; ".join(totals))
    return "\n".join(lines)
