"""scripts/bench_cards.py runs end to end on a few jobs and answers in the shape scripts/bench.py
takes (rows with both rates and their ratios). No timing is asserted: a benchmark, not a test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_cards.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("payretry_bench_cards", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_cards_runs_both_sides_and_reports_both_rates() -> None:
    bench = _bench()
    rows = bench.run(bench.parse_args(["--jobs", "40", "--repeat", "1"]))
    assert [r["measure"] for r in rows] == ["bulk queue", "run-due"]
    for row in rows:
        assert row["jobs"] == 40
        assert row["without_ledger_per_s"] > 0 and row["with_ledger_per_s"] > 0
        assert row["ratio"] > 0 and row["cpu_ratio"] > 0
    text = bench.render(rows, 1)
    assert "run-due" in text and "goal: run-due with the ledger at least 0.85" in text


def test_the_rows_with_cards_carry_a_card_identity_and_the_others_none() -> None:
    bench = _bench()
    carded, bare = bench.make_rows(4, True), bench.make_rows(4, False)
    assert all(r["card_fingerprint"] and r["payment_method"] for r in carded)
    assert not any({"customer", "payment_method", "card_fingerprint"} & set(r) for r in bare)
    assert carded[0]["card_fingerprint"] == carded[1]["card_fingerprint"]  # two jobs a card
