"""Recovery analytics: what the daily rollups say about the payments retries won back, for
`payretry report` and the dashboard. One document, built here from the rollups alone (so the
figures survive `purge`); the CLI prints it or renders it, the pages show it.

- recovered: payments that went through after a retry, count and amount per currency;
- the recovery rate: recovered / jobs that ended (succeeded, failed, exhausted, abandoned;
  cancelled jobs are shown but not counted: an operator stopped them);
- by code (the error code, with the decline code, the job was queued after);
- by attempt number: how many attempts N succeeded and failed, and N's share of recoveries;
- time from the first failure (when the job was queued) to the payment, in buckets, and its mean;
- a daily trend: recovered and lost jobs per day, recovered amount per currency.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from payretry.domain.analytics import AnalyticsStore
from payretry.domain.durations import format_duration
from payretry.domain.money import Money
from payretry.domain.rollups import INF, RECOVERY_BUCKETS, Metric, Rollup, format_bound

LOST = ("failed", "exhausted", "abandoned")
RECOVERED = "succeeded"


def _rate(ok: int, total: int) -> float | None:
    return round(ok / total, 4) if total else None


def _amounts(per_currency: dict[str, int]) -> dict[str, dict[str, Any]]:
    return {
        cur: {"amount_minor": minor, "amount": Money(minor, cur).major()}
        for cur, minor in sorted(per_currency.items())
    }


def _bucket_label(le: str) -> str:
    if le == INF:
        return f"over {format_duration(timedelta(seconds=RECOVERY_BUCKETS[-1]))}"
    return f"up to {format_duration(timedelta(seconds=float(le)))}"


def report(rollups: list[Rollup], since: date, until: date) -> dict[str, Any]:
    """The report of the days [since, until] (UTC) from their rollups."""
    rollups = [r for r in rollups if since <= r.day <= until]
    ended: dict[str, int] = defaultdict(int)
    recovered_count: dict[str, int] = defaultdict(int)
    recovered_minor: dict[str, int] = defaultdict(int)
    codes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    attempts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    recovery: dict[str, int] = defaultdict(int)
    recovery_seconds = 0.0
    days: dict[date, dict[str, Any]] = {}
    for r in rollups:
        if r.metric is Metric.ENDED:
            ended[r.key] += r.count
            day = days.setdefault(r.day, {"recovered": 0, "lost": 0, "cancelled": 0, "amount": {}})
            if r.key == RECOVERED:
                recovered_count[r.currency] += r.count
                recovered_minor[r.currency] += r.amount_minor
                day["recovered"] += r.count
                day["amount"][r.currency] = day["amount"].get(r.currency, 0) + r.amount_minor
            elif r.key in LOST:
                day["lost"] += r.count
            else:
                day["cancelled"] += r.count
        elif r.metric is Metric.CODE:
            code, state = r.key.rsplit("|", 1)
            codes[code][state] += r.count
        elif r.metric is Metric.ATTEMPT:
            number, outcome = r.key.split("|")
            attempts[int(number)][outcome] += r.count
        elif r.metric is Metric.RECOVERY:
            recovery[r.key] += r.count
            recovery_seconds += r.seconds
    recovered = ended.get(RECOVERED, 0)
    lost = sum(ended.get(state, 0) for state in LOST)
    total_recoveries = sum(a.get(RECOVERED, 0) for a in attempts.values())
    by_code: list[dict[str, Any]] = []
    for code, states in codes.items():
        ok = states.get(RECOVERED, 0)
        counted = ok + sum(states.get(state, 0) for state in LOST)
        by_code.append(
            {
                "code": code,
                "ended": counted,
                "recovered": ok,
                "cancelled": states.get("cancelled", 0),
                "rate": _rate(ok, counted),
            }
        )
    by_code.sort(key=lambda row: (-int(row["ended"]), str(row["code"])))
    buckets = [*(format_bound(b) for b in RECOVERY_BUCKETS), INF]
    recoveries = sum(recovery.values())
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "ended": {state: ended[state] for state in sorted(ended)},
        "recovered": recovered,
        "lost": lost,
        "recovery_rate": _rate(recovered, recovered + lost),
        "recovered_amount": {
            cur: {**money, "count": recovered_count[cur]}
            for cur, money in _amounts(dict(recovered_minor)).items()
        },
        "by_code": by_code,
        "by_attempt": [
            {
                "attempt": number,
                "succeeded": counts.get(RECOVERED, 0),
                "failed": counts.get("failed", 0),
                "rate": _rate(
                    counts.get(RECOVERED, 0), counts.get(RECOVERED, 0) + counts.get("failed", 0)
                ),
                "share_of_recoveries": _rate(counts.get(RECOVERED, 0), total_recoveries),
            }
            for number, counts in sorted(attempts.items())
        ],
        "time_to_recovery": {
            "count": recoveries,
            "mean_seconds": round(recovery_seconds / recoveries, 1) if recoveries else None,
            "buckets": [
                {"le": le, "label": _bucket_label(le), "count": recovery.get(le, 0)}
                for le in buckets
            ],
        },
        "daily": [
            {
                "day": day.isoformat(),
                "recovered": days[day]["recovered"],
                "lost": days[day]["lost"],
                "cancelled": days[day]["cancelled"],
                "recovered_amount": _amounts(days[day]["amount"]),
            }
            for day in sorted(days)
        ],
    }


def recovery_report(store: AnalyticsStore, since: date, until: date) -> dict[str, Any]:
    return report(store.rollups(since), since, until)
