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
