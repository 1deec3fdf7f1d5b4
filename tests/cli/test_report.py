"""payretry report against a hand-built history (known recoveries per code and attempt), before
and after a purge, on SQLite and PostgreSQL; its renderings and its bad input."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Clock, doc, ok, queue_args, run

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        found: str = request.getfixturevalue("pg_url")
        return found
    return f"sqlite:///{tmp_path / 'report.db'}"


def history(url: str, clock: Clock) -> None:
    """txn_a: paid on attempt 1 after 1m; txn_b: attempt 1 failed, paid on attempt 2 after 7m
    (10.00 EUR); txn_c: declined for good on attempt 1; txn_d: cancelled."""
    sim = "--metadata"
    ok(run(*queue_args("txn_a", sim, "simulate=succeeded"), db=url))
    ok(
        run(
            *queue_args(
                "txn_b",
                sim,
                "simulate=processing_error,succeeded",
                error_code="network_error",
                amount="10.00",
                currency="EUR",
            ),
            db=url,
        )
    )
    ok(run(*queue_args("txn_c", sim, "simulate=card_declined:stolen_card"), db=url))
    ok(run(*queue_args("txn_d", amount="5.00"), db=url))
    ok(run("cancel", "txn_d", db=url))
    clock.tick(60)
    ok(run("run-due", db=url))
    clock.tick(360)
    ok(run("run-due", db=url))


def report(url: str, *args: str) -> Any:
    return doc(ok(run("report", "--json", *args, db=url)))


def test_report_numbers_match_the_history_and_survive_purge(url: str, clock: Clock) -> None:
    history(url, clock)
    before = report(url)
    assert before["recovered"] == 2 and before["lost"] == 1 and before["recovery_rate"] == 0.6667
    assert before["ended"] == {"cancelled": 1, "failed": 1, "succeeded": 2}
    assert before["recovered_amount"] == {
        "EUR": {"amount_minor": 1000, "amount": "10.00", "count": 1},
        "USD": {"amount_minor": 9999, "amount": "99.99", "count": 1},
    }
    codes = {row["code"]: row for row in before["by_code"]}
    assert codes["processing_error"] == {
        "code": "processing_error",
        "ended": 2,
        "recovered": 1,
        "cancelled": 1,
        "rate": 0.5,
    }
    assert codes["network_error"]["recovered"] == 1 and codes["network_error"]["rate"] == 1.0
    assert before["by_attempt"] == [
        {"attempt": 1, "succeeded": 1, "failed": 2, "rate": 0.3333, "share_of_recoveries": 0.5},
        {"attempt": 2, "succeeded": 1, "failed": 0, "rate": 1.0, "share_of_recoveries": 0.5},
    ]
    took = before["time_to_recovery"]
    assert took["count"] == 2 and took["mean_seconds"] == 240.0  # 1m and 7m
    assert took["buckets"][0] == {"le": "3600.0", "label": "up to 1h", "count": 2}
    assert before["daily"] == [
        {
            "day": "2026-11-22",
            "recovered": 2,
            "lost": 1,
            "cancelled": 1,
            "recovered_amount": {
                "EUR": {"amount_minor": 1000, "amount": "10.00"},
                "USD": {"amount_minor": 9999, "amount": "99.99"},
            },
        }
    ]
    clock.tick(timedelta(days=2).total_seconds())
    purged = doc(ok(run("purge", "--older-than", "1d", "--json", db=url)))
    assert purged["jobs"] == 4
    assert doc(ok(run("list", "--json", db=url)))["jobs"] == []
    after = report(url)
    assert {k: v for k, v in after.items() if k not in ("since", "until")} == {
        k: v for k, v in before.items() if k not in ("since", "until")
    }
    assert report(url, "--since", "1d")["recovered"] == 0  # today only: nothing ended today


def test_report_table_html_and_png(url: str, clock: Clock, tmp_path: Path) -> None:
    history(url, clock)
    text = ok(run("report", db=url)).stdout
    assert "2 recovered, 1 lost, rate 66.7%" in text and "processing_error" in text
    page = tmp_path / "report.html"
    ok(run("report", "--html", str(page), db=url))
    html = page.read_text()
    assert html.count("<svg") == 5 and "Recovery rate by error and decline code" in html
    assert "<script" not in html
    folder = tmp_path / "charts"
    out = ok(run("report", "--png", str(folder), db=url)).stdout
    assert "Wrote 5 chart(s)" in out
    pngs = sorted(p.name for p in folder.iterdir())
    assert pngs == sorted(
        f"{n}.png" for n in ("recovered", "by_code", "by_attempt", "time_to_recovery", "daily")
    )
    assert all((folder / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--since", "0d"], "--since"),
        (["--since", "soon"], "--since"),
        (["--since", "5000d"], "--since"),
        (["--json", "--html", "x.html"], "--html"),
    ],
)
def test_report_bad_input_exits_2_naming_the_flag(
    tmp_path: Path, args: list[str], field: str
) -> None:
    result = run("report", *args, "--json", db=f"sqlite:///{tmp_path / 'r.db'}")
    assert result.exit_code == 2
    assert doc(result)["error"]["field"] == field


def test_report_html_to_a_folder_and_png_to_a_file_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert run("report", "--html", str(tmp_path), db=url).exit_code == 2
    (tmp_path / "file").write_text("x")
    result = run("report", "--png", str(tmp_path / "file"), db=url)
    assert result.exit_code == 2 and "--png" in result.stderr
