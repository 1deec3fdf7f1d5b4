"""The recovery report's charts as SVG or PNG, drawn by matplotlib on its Agg backend (no
display, no GUI toolkit; thread-safe through the object API, never pyplot's global state).

matplotlib over pygal: one maintained library renders both formats the report needs (SVG for
the pages, PNG for `--png`) with no further native dependency, and its SVG holds no script
(pygal's embeds a tooltip script from a CDN by default, which the pages' Content-Security-Policy
would refuse). Output is deterministic: fixed hash salt, no creation date.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

CHARTS = ("recovered", "by_code", "by_attempt", "time_to_recovery", "daily")
TITLES = {
    "recovered": "Recovered amount per currency",
    "by_code": "Recovery rate by error and decline code",
    "by_attempt": "Success rate by attempt number",
    "time_to_recovery": "Time from first failure to recovery",
    "daily": "Recovered and lost per day",
}
_LOCK = threading.Lock()  # matplotlib's caches are shared; draw one chart at a time
_INK, _OK, _LOST = "#1f2933", "#2f7d4f", "#b4462b"


def _figure() -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.2), dpi=100, layout="constrained")
    return figure


def _recovered(ax: Any, report: dict[str, Any]) -> None:
    amounts = report["recovered_amount"]
    names = list(amounts)
    values = [float(amounts[cur]["amount"]) for cur in names]
    ax.bar(names, values, color=_OK)
    ax.set_ylabel("amount (major units)")
    for x, value in enumerate(values):
        ax.annotate(f"{value:,.2f}", (x, value), ha="center", va="bottom", fontsize=8)


def _by_code(ax: Any, report: dict[str, Any]) -> None:
    rows = [r for r in report["by_code"] if r["ended"]][:12]
    codes = [r["code"] for r in rows][::-1]
    rates = [100.0 * (r["rate"] or 0.0) for r in rows][::-1]
    ax.barh(codes, rates, color=_OK)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of ended jobs recovered")
    ax.tick_params(axis="y", labelsize=7)


def _by_attempt(ax: Any, report: dict[str, Any]) -> None:
    rows = report["by_attempt"]
    ax.bar([str(r["attempt"]) for r in rows], [100.0 * (r["rate"] or 0.0) for r in rows], color=_OK)
    ax.set_ylim(0, 100)
    ax.set_xlabel("attempt")
    ax.set_ylabel("% succeeded")


def _time_to_recovery(ax: Any, report: dict[str, Any]) -> None:
    buckets = report["time_to_recovery"]["buckets"]
    ax.bar([b["label"] for b in buckets], [b["count"] for b in buckets], color=_OK)
    ax.set_ylabel("recoveries")
    ax.tick_params(axis="x", labelsize=7)


def _daily(ax: Any, report: dict[str, Any]) -> None:
    rows = report["daily"]
    days = [r["day"][5:] for r in rows]
    ax.plot(days, [r["recovered"] for r in rows], marker="o", color=_OK, label="recovered")
    ax.plot(days, [r["lost"] for r in rows], marker="o", color=_LOST, label="lost")
    ax.set_ylabel("jobs")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=7, rotation=45)


_DRAW: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    "recovered": _recovered,
    "by_code": _by_code,
    "by_attempt": _by_attempt,
    "time_to_recovery": _time_to_recovery,
    "daily": _daily,
}


def available() -> bool:
    """Whether matplotlib (the charts extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def chart(report: dict[str, Any], name: str, fmt: str = "svg") -> bytes:
    """One chart of the report, as SVG or PNG bytes."""

    if name not in _DRAW:
        raise KeyError(name)
    with _LOCK:
        return _draw(report, name, fmt)


def _draw(report: dict[str, Any], name: str, fmt: str) -> bytes:
    import matplotlib

    figure = _figure()
    ax = figure.add_subplot()
    ax.set_title(TITLES[name], fontsize=10, color=_INK)
    _DRAW[name](ax, report)
    if not ax.has_data():
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    out = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "payretry", "svg.fonttype": "path"}):
        figure.savefig(out, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return out.getvalue()


def charts(report: dict[str, Any], fmt: str = "svg") -> dict[str, bytes]:
    return {name: chart(report, name, fmt) for name in CHARTS}
