"""What every section of scripts/bench.py shares: the job mix, whole-process measurement of a
command (wall clock, CPU time and peak RSS of that one child, from wait4), the `payretry` command
line and its environment, and small SQLite helpers."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent

# The queue mix: (error code, decline code, weight). All retryable, so every row is queued.
_CODES: tuple[tuple[str, str | None, int], ...] = (
    ("processing_error", None, 30),
    ("network_error", None, 20),
    ("card_declined", "insufficient_funds", 15),
    ("service_unavailable", None, 10),
    ("card_declined", "do_not_honor", 8),
    ("rate_limit_exceeded", None, 7),
    ("authentication_failed", None, 5),
    ("api_connection_error", None, 5),
)
CURRENCIES: tuple[tuple[str, int, int], ...] = (  # code, exponent, weight
    ("USD", 2, 50),
    ("EUR", 2, 25),
    ("GBP", 2, 15),
    ("JPY", 0, 7),
    ("KWD", 3, 3),
)
EXPONENTS = {code: exponent for code, exponent, _ in CURRENCIES}
# What the simulated processor does with a job whose metadata says so: the first attempt fails
# with processing_error (rescheduled by the policy, 5 minutes on), a second would succeed.
FAILS_ONCE = "processing_error,succeeded"


def make_rows(n: int, seed: int = 2, fail_every: int = 0) -> list[dict[str, Any]]:
    """N realistic queue rows, as `queue --from-file` reads them. With `fail_every` k, every
    k-th row (0, k, 2k, ...) carries `simulate` metadata: its first attempt fails and is
    rescheduled; every other attempt succeeds (run with success rate 1)."""
    rng = random.Random(seed)
    codes = [c[:2] for c in _CODES]
    code_weights = [c[2] for c in _CODES]
    currencies = [c[:2] for c in CURRENCIES]
    currency_weights = [c[2] for c in CURRENCIES]
    rows: list[dict[str, Any]] = []
    for i in range(n):
        error_code, decline_code = rng.choices(codes, code_weights)[0]
        currency, exponent = rng.choices(currencies, currency_weights)[0]
        minor = rng.randint(100, 2_000_000)
        amount = str(minor) if exponent == 0 else f"{Decimal(minor).scaleb(-exponent)}"
        meta = {"order": f"ord_{i:08d}", "plan": rng.choice(("basic", "pro"))}
        if fail_every and i % fail_every == 0:
            meta["simulate"] = FAILS_ONCE
        row: dict[str, Any] = {
            "transaction_id": f"txn_{i:08d}",
            "user_id": f"user_{rng.randrange(n // 3 + 1):07d}",
            "amount": amount,
            "currency": currency,
            "error_code": error_code,
            "error_message": f"charge failed: {error_code}",
            "payment_intent": f"pi_{i:08d}",
            "metadata": meta,
        }
        if decline_code:
            row["decline_code"] = decline_code
        if i % 10 == 0:
            row["customer"] = f"cus_{i:08d}"
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
    return path


def minor_units(amount: str, currency: str) -> int:
    """'12.34' USD -> 1234, without floats (what every side of the benchmark stores)."""
    exponent = EXPONENTS[currency]
    whole, _, frac = amount.partition(".")
    return int(whole) * 10**exponent + (int(frac.ljust(exponent, "0")) if frac else 0)


# -- whole-process measurement ------------------------------------------------------------------


@dataclass
class Run:
    """One child process: wall seconds from spawn to exit, its user+system CPU seconds and its
    peak RSS (MiB), all from wait4 on that child alone."""

    wall: float
    cpu: float
    rss_mib: float
    code: int
    out: str = ""
    err: str = ""


def measure(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = False,
    check: bool = True,
) -> Run:
    """Run `cmd` to its end; what it cost. stdout is dropped unless `capture`.

    Peak RSS is the child's VmHWM, read from /proc every few milliseconds while it runs: the
    ru_maxrss of wait4 would also count the (much larger) memory of this process, which the
    child shares from the fork until its exec."""
    out_path = err_path = None
    with (
        open(os.devnull if not capture else _tmp("out"), "w+b") as out,
        open(_tmp("err"), "w+b") as err,
    ):
        out_path, err_path = out.name, err.name
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=dict(env or os.environ), cwd=cwd)
        watch = PeakRss(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        peak = watch.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text_out = out.read().decode(errors="replace") if capture else ""
        text_err = err.read().decode(errors="replace")
    for path in (out_path, err_path):
        if path and path != os.devnull:
            os.unlink(path)
    run = Run(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mib=peak if peak else usage.ru_maxrss / 1024,  # KiB on Linux
        code=proc.returncode,
        out=text_out,
        err=text_err,
    )
    if check and run.code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {run.code}:\n{text_err[-3000:]}")
    return run


class PeakRss:
    """Follows one child's VmHWM (peak RSS of its own address space, since its exec): every
    2 ms at first, so a short command is seen, backing off to every 50 ms, so a long one costs
    this process next to nothing."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kib = pid, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                        return
        except (OSError, ValueError):
            pass

    def _watch(self) -> None:
        interval = 0.002
        while not self._done.wait(interval):
            self._read()
            interval = min(0.05, interval * 1.05)

    def stop(self) -> float:
        """The peak seen, in MiB (0 where /proc cannot tell)."""
        self._done.set()
        self._thread.join()
        return self.peak_kib / 1024


_counter = 0


def _tmp(kind: str) -> str:
    global _counter
    _counter += 1
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    return str(folder / f"payretry-bench-{os.getpid()}-{_counter}.{kind}")


@dataclass
class Series:
    """Several runs of one command; the median is what is reported."""

    runs: list[Run] = field(default_factory=list)

    @property
    def median_wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def median_cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def peak_rss(self) -> float:
        return max(r.rss_mib for r in self.runs)


def payretry_cmd() -> list[str]:
    """The installed `payretry` console script beside this interpreter (else python -m)."""
    script = Path(sys.executable).parent / "payretry"
    if script.exists():
        return [str(script)]
    found = shutil.which("payretry")
    return [found] if found else [sys.executable, "-m", "payretry"]


def payretry_env(**extra: str) -> dict[str, str]:
    """The environment every payretry child runs in: no PAYRETRY_* from the caller, the
    simulated processor at zero latency and success rate 1 (jobs whose `simulate` metadata
    says otherwise fail as told), plain logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYRETRY_")}
    env.update(
        {
            "PAYRETRY_SIMULATED_SUCCESS_RATE": "1",
            "PAYRETRY_SIMULATED_LATENCY": "0s",
            "PAYRETRY_LOG_LEVEL": "warning",
            "COLUMNS": "120",
        }
    )
    env.update(extra)
    return env


def script_cmd(name: str, *args: str) -> list[str]:
    return [sys.executable, str(SCRIPTS / name), *args]


# -- SQLite helpers -----------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def checkpoint_copy(source: Path, target: Path) -> None:
    """Copy a database file after folding its WAL in, so the copy stands alone."""
    checkpoint(source)
    for old in target.parent.glob(target.name + "*"):
        old.unlink()
    shutil.copyfile(source, target)


def count_states(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT state, count(*) FROM retry_jobs GROUP BY state"))
    finally:
        conn.close()


# Bench-side, untimed: `queue` sets each first retry from the policy (up to 24 h ahead); the
# benchmark wants the whole backlog due now, so it moves every scheduled job's next retry back
# to the moment it was queued.
MAKE_DUE = "UPDATE retry_jobs SET next_retry_at = created_at WHERE state = 'scheduled'"


def make_due_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(MAKE_DUE)
        conn.execute("COMMIT")
    finally:
        conn.close()
    checkpoint(path)


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def cores() -> dict[str, int]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu_count": os.cpu_count() or 0, "usable": usable or os.cpu_count() or 0}


def rate(jobs: int, seconds: float) -> float:
    return jobs / seconds if seconds > 0 else float("inf")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure_many(cmds: Sequence[Sequence[str]], *, env: Mapping[str, str] | None = None) -> Run:
    """Start every command at once; wall seconds until the last one ended, the CPU seconds of
    all of them, the largest peak RSS among them."""
    logs = [tempfile.TemporaryFile() for _ in cmds]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            list(cmd), stdout=subprocess.DEVNULL, stderr=log, env=dict(env or os.environ)
        )
        for cmd, log in zip(cmds, logs, strict=True)
    ]
    watches = [PeakRss(proc.pid) for proc in procs]
    cpu = 0.0
    rss = 0.0
    codes = []
    errors = []
    for proc, log, watch in zip(procs, logs, watches, strict=True):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        codes.append(proc.returncode)
        log.seek(0)
        errors.append(log.read().decode(errors="replace")[-2000:])
        log.close()
        cpu += usage.ru_utime + usage.ru_stime
        rss = max(rss, watch.stop())
    wall = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"{' '.join(cmds[0])} (x{len(cmds)}) exited {codes}:\n{errors}")
    return Run(wall=wall, cpu=cpu, rss_mib=rss, code=0)
