"""In-memory twins of payretry's ports, for tests: yours and ours.

    from payretry.testing import ManualClock, MemoryQueue, MemoryStore

    clock = ManualClock(datetime(2026, 11, 22, 12, tzinfo=UTC))
    store = MemoryStore()
    runner = Runner(store, RetryPolicy.standard(), my_processor, clock=clock)
    Operations(store, policy).queue(request, clock())
    report = runner.run_due()

`MemoryStore` is the store (jobs, leases, attempts, the event outbox, sinks, SQS dispatch marks,
worker beats, and the API's reads of them: JobLookups) with the rules of the SQL store;
`MemoryQueue` is the retry queue with SQS's rules (delays, visibility, receive counts, a
dead-letter queue); `ManualClock` is a clock the test moves. The HTTP API's own ports have
theirs: `MemoryTokens` (TokenStore), `MemoryThrottle` (ThrottleStore), `MemoryIdempotency`
(IdempotencyStore) and `MemoryFirstAttempts` (FirstAttemptStore). They import nothing heavier
than the standard library (no SQLAlchemy, boto3 or Stripe), and the contract suites in
tests/contract run every adapter and its twin through the same tests.
"""

from payretry.testing.access import MemoryThrottle, MemoryTokens
from payretry.testing.clock import ManualClock
from payretry.testing.queue import MemoryQueue
from payretry.testing.requests import MemoryFirstAttempts, MemoryIdempotency
from payretry.testing.store import MemoryStore

__all__ = [
    "ManualClock",
    "MemoryFirstAttempts",
    "MemoryIdempotency",
    "MemoryQueue",
    "MemoryStore",
    "MemoryThrottle",
    "MemoryTokens",
]
