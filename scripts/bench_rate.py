"""Rate section of scripts/bench.py: N due jobs against a simulated processor that takes 200 ms,
under a 25/s limit with enough concurrency to reach it: the achieved rate as a fraction of the
limit (goal at least 0.95) and the number of requests beyond it in any one-second window
(goal 0). The baseline is the limit itself."""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from payretry.domain.results import AttemptRequest, AttemptResult
from payretry.processors.simulated import SimulatedProcessor


class Timed(SimulatedProcessor):
    """The simulated processor, recording when each request starts."""

    def __init__(self, latency: timedelta) -> None:
        super().__init__(success_rate=1.0, latency=latency)
        self.starts: list[float] = []
        self._guard = threading.Lock()

    def attempt(self, request: AttemptRequest) -> AttemptResult:
        with self._guard:
            self.starts.append(time.monotonic())
        return super().attempt(request)


def beyond_limit(starts: list[float], rate: float) -> int:
    """Requests past the limit: for each start, how many of the starts in the one second from
    it exceed `rate`; the worst window's excess."""
    ordered = sorted(starts)
    worst = 0
    j = 0
    for i, first in enumerate(ordered):
        while j < len(ordered) and ordered[j] - first < 1.0:
            j += 1
        worst = max(worst, (j - i) - int(rate))
    return worst


def run(
    jobs: int = 1000, rate: float = 25.0, latency_ms: int = 200, concurrency: int = 8
) -> dict[str, Any]:
    from payretry.clock import utcnow
    from payretry.domain.policy import RetryPolicy
    from payretry.pacing import RateLimiter
    from payretry.service.intake import new_job
    from payretry.service.operations import Operations
    from payretry.service.runner import Runner
    from payretry.store.sql import open_store

    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{Path(folder) / 'rate.db'}")
        now = datetime.now(UTC)
        rows = [
            (
                n,
                new_job(
                    {
                        "transaction_id": f"t{n}",
                        "user_id": "u",
                        "amount": f"{n}.00",
                        "currency": "USD",
                        "error_code": "network_error",
                    },
                    now=now,
                ),
            )
            for n in range(1, jobs + 1)
        ]
        Operations(store, RetryPolicy.standard()).queue_many(rows, now)
        processor = Timed(timedelta(milliseconds=latency_ms))
        runner = Runner(
            store,
            RetryPolicy.standard(),
            processor,
            clock=utcnow,
            concurrency=concurrency,
            limiter=RateLimiter(rate),
        )
        start = time.perf_counter()
        report = runner.run_due()
        wall = time.perf_counter() - start
        store.close()
    starts = sorted(processor.starts)
    span = starts[-1] - starts[0] if len(starts) > 1 else 0.0
    achieved = (len(starts) - 1) / span if span else 0.0
    return {
        "jobs": jobs,
        "rate_limit": rate,
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "processed": report.processed,
        "wall_s": wall,
        "achieved_per_s": achieved,
        "fraction_of_limit": achieved / rate,
        "beyond_limit": beyond_limit(starts, rate),
    }


def render(result: dict[str, Any]) -> str:
    return (
        f"Rate limit ({result['jobs']:,} jobs, processor {result['latency_ms']} ms, limit "
        f"{result['rate_limit']:g}/s, concurrency {result['concurrency']})\n"
        f"  achieved {result['achieved_per_s']:.2f}/s = {result['fraction_of_limit']:.3f} of the "
        f"limit (goal >= 0.95); requests beyond the limit in any second: "
        f"{result['beyond_limit']} (goal 0); {result['processed']:,} processed in "
        f"{result['wall_s']:.1f} s"
    )
