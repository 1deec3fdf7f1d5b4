"""scripts/bench.py parses its arguments and knows its sections (no benchmark is run here)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("payretry_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _bench_scale() -> ModuleType:
    _bench()  # puts scripts/ on sys.path
    return importlib.import_module("bench_scale")


def test_sections_are_the_documented_ones_and_come_in_their_order() -> None:
    bench = _bench()
    assert bench.SECTIONS == (
        "sqlite",
        "peers",
        "postgres",
        "concurrency",
        "cli",
        "scale",
        "rate",
        "statements",
    )
    assert "statements" not in bench.DEFAULT_SECTIONS
    assert bench.parse_sections("rate, sqlite,cli") == ["sqlite", "cli", "rate"]
    for name in bench.SECTIONS:
        assert name in (bench.__doc__ or ""), f"section {name} undocumented"


def test_an_unknown_or_empty_section_list_is_refused_by_name() -> None:
    bench = _bench()
    with pytest.raises(ValueError, match="unknown section\\(s\\): nosuch"):
        bench.parse_sections("sqlite,nosuch")
    with pytest.raises(ValueError, match="no section"):
        bench.parse_sections(" , ")


def test_quick_sizes_are_smaller_and_flags_override_them() -> None:
    bench = _bench()
    args = bench.parser().parse_args(["--quick", "--jobs", "1234"])
    size = bench.sizes(args)
    assert size.jobs == 1234
    assert size.peer_jobs == bench.QUICK.peer_jobs < bench.FULL.peer_jobs
    assert bench.sizes(bench.parser().parse_args([])) == bench.FULL


def test_the_command_line_refuses_an_unknown_section_with_exit_2() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--sections", "sqlite,bogus"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "unknown section(s): bogus" in out.stderr


def test_scale_copies_sizes_the_scale_section_only() -> None:
    bench = _bench()
    size = bench.sizes(bench.parser().parse_args(["--scale-copies", "20"]))
    assert size.scale_copies == 20
    assert size.scale_seed == bench.FULL.scale_seed and size.jobs == bench.FULL.jobs
    assert bench.FULL.scale_copies == 100  # a million jobs unless told


def test_the_command_line_refuses_no_scale_copies_with_exit_2() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--sections", "scale", "--scale-copies", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--scale-copies must be at least 1" in out.stderr


def test_the_probe_keeps_apart_the_waits_after_the_other_writer_ended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import sqlite3
    import threading
    import time

    bench_scale = _bench_scale()

    db, stop = tmp_path / "p.db", tmp_path / "p.stop"
    sqlite3.connect(db).close()
    prober = threading.Thread(target=bench_scale.probe, args=(db, stop))
    prober.start()
    time.sleep(0.1)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the probe waits this out, before "alone"
    time.sleep(0.3)
    writer.execute("ROLLBACK")
    writer.close()
    time.sleep(0.1)
    stop.with_suffix(".alone").touch()
    time.sleep(0.2)
    stop.touch()
    prober.join(timeout=5)
    found = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert found["max_wait_s"] >= 0.2
    assert 0 < found["alone_samples"] < found["samples"]
    assert found["alone_max_wait_s"] < 0.2  # the long wait came before


def test_the_purge_line_gives_its_own_longest_hold_beside_the_probes_wait() -> None:
    bench_scale = _bench_scale()

    purge = {
        "removed": 1_000_000,
        "wall_s": 600.0,
        "jobs_per_s": 1666.7,
        "longest_hold_s": 0.42,
        "transactions": 3_000,
        "probe_max_wait_s": 1.3,
        "probe_p99_wait_s": 0.05,
        "probe_samples": 40_000,
        "probe_long_waits": [[1.0, 1.3]],
        "probe_alone_max_wait_s": 0.08,
        "probe_alone_samples": 38_000,
    }
    run_due = {"jobs": 1, "jobs_per_s": 1.0, "peak_rss_mib": 70.0, "probe_max_wait_s": 0.4}
    text = bench_scale.render_scale(
        {
            "big_jobs": 1_050_000,
            "small_jobs": 1_050,
            "build_s": 1.0,
            "reads": {},
            "db_bytes": 2**30,
            "bytes_per_job": 1_000,
            "run_due_alone": run_due,
            "purge": purge,
            "run_due_during_purge": {**run_due, "exit_code": 0, "ended_before_purge": True},
            "run_due_small_peak_rss_mib": 60.0,
        }
    )
    line = next(line for line in text.splitlines() if line.startswith("purge:"))
    assert (
        "longest write-lock hold of its batches 420 ms (3,000 transactions; goal <= 1 s: met)"
        in line
    )
    assert "longest write-lock wait of the probe meanwhile 1,300 ms" in line
    assert "goal <= 1 s: NOT met" in line  # the probe's
    assert "once run-due had ended, longest 80 ms of 38,000 samples" in line
