"""`payretry report --html FILE`: one self-contained file (the charts inline as SVG, the numbers
beside them), every value escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from payretry.charts.render import CHARTS, TITLES

_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2933;max-width:72rem}
section{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start;margin-bottom:2rem}
table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #ccd;
text-align:right}th:first-child,td:first-child{text-align:left}svg{max-width:40rem;height:auto}"""


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def tables(report: dict[str, Any]) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The numbers beside each chart: (header, rows), as text (shared with the dashboard)."""
    return {
        "recovered": (
            ["currency", "payments", "amount"],
            [
                [cur, str(row["count"]), row["amount"]]
                for cur, row in report["recovered_amount"].items()
            ],
        ),
        "by_code": (
            ["code", "ended", "recovered", "rate"],
            [
                [r["code"], str(r["ended"]), str(r["recovered"]), _rate(r["rate"])]
                for r in report["by_code"]
            ],
        ),
        "by_attempt": (
            ["attempt", "succeeded", "failed", "rate", "share of recoveries"],
            [
                [
                    str(r["attempt"]),
                    str(r["succeeded"]),
                    str(r["failed"]),
                    _rate(r["rate"]),
                    _rate(r["share_of_recoveries"]),
                ]
                for r in report["by_attempt"]
            ],
        ),
        "time_to_recovery": (
            ["time", "recoveries"],
            [[b["label"], str(b["count"])] for b in report["time_to_recovery"]["buckets"]],
        ),
        "daily": (
            ["day", "recovered", "lost", "cancelled"],
            [
                [r["day"], str(r["recovered"]), str(r["lost"]), str(r["cancelled"])]
                for r in report["daily"]
            ],
        ),
    }


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _inline(svg: bytes) -> str:
    text = svg.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start != -1 else ""


def report_html(report: dict[str, Any], charts: dict[str, bytes]) -> str:
    numbers = tables(report)
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>payretry recovery report {escape(report['since'])} to "
        f"{escape(report['until'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Recovery, {escape(report['since'])} to {escape(report['until'])}</h1>",
        f"<p>{report['recovered']} recovered, {report['lost']} lost; recovery rate "
        f"{escape(_rate(report['recovery_rate']))}.</p>",
    ]
    for name in CHARTS:
        header, rows = numbers[name]
        parts.append(f"<h2>{escape(TITLES[name])}</h2><section>")
        parts.append(_inline(charts[name]))
        parts.append(_table(header, rows))
        parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)
