"""The composition root: every collaborator an edge needs, built from the settings in one place.

The CLI, the daemon and the HTTP API build the store, the processor, the pass over due jobs
(attempting here, or dispatching to SQS), the worker, event delivery and the daemon through a
`Wiring`; nothing else reads settings to decide what to build. Adapters receive their own small
settings values from here and know nothing of the configuration. Heavy libraries (stripe,
boto3, the sinks') are imported only when what needs them is built.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from payretry.clock import utcnow
from payretry.config import Settings
from payretry.domain.models import Job, NewJob
from payretry.domain.outbox import Telemetry
from payretry.domain.policy import RetryPolicy
from payretry.domain.ports import ExpiresActions, FindsJobs, Processor, RetriedElsewhere
from payretry.domain.requests import JobLookups
from payretry.domain.results import ActionClosed
from payretry.errors import QueueError, Refused
from payretry.pacing import RateLimiter
from payretry.wiring.processors import BuiltProcessor, build_processor, stripe_settings
from payretry.wiring.sinks import build_sinks, configured

if TYPE_CHECKING:
    from payretry.daemon import Daemon
    from payretry.dispatch.sqs import SqsQueue, SqsSettings
    from payretry.service.delivery import Delivery
    from payretry.service.dispatcher import Dispatcher
    from payretry.service.duepass import DuePass
    from payretry.service.idempotency import IdempotencyKeys
    from payretry.service.operations import Operations
    from payretry.service.process import ProcessPayment
    from payretry.service.revival import Revivals
    from payretry.service.runner import Runner
    from payretry.service.throttle import RetryRequests, RetryThrottle
    from payretry.service.tokens import Tokens
    from payretry.service.webhooks import StripeWebhooks
    from payretry.service.worker import Worker
    from payretry.store.sql import SqlStore

Clock = Callable[[], datetime]


class _OnFirstUse:
    """The processor's RetriedElsewhere port, built only when a queue first asks it (queueing a
    job that names no payment intent needs no processor, nor its credentials)."""

    def __init__(self, build: Callable[[], RetriedElsewhere | None]) -> None:
        self.build = build

    def retried_elsewhere(self, request: NewJob) -> str | None:
        port = self.build()
        return port.retried_elsewhere(request) if port is not None else None


class _ExpiryOnFirstUse:
    """The processor's ExpiresActions port, built only when a cancel first needs it (a job
    waiting on the customer): cancelling a scheduled job needs no processor credentials."""

    def __init__(self, build: Callable[[], ExpiresActions | None]) -> None:
        self.build = build

    def expire_action(self, job: Job) -> ActionClosed:
        port = self.build()
        if port is None:
            raise Refused(
                "the configured processor cannot expire the customer's checkout session: "
                "nothing cancelled"
            )
        return port.expire_action(job)


class Wiring:
    def __init__(
        self, settings: Settings, *, clock: Clock = utcnow, store: SqlStore | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._store = store
        self._owns_store = store is None
        self._processors: dict[str, BuiltProcessor] = {}
        self._closers: list[Callable[[], None]] = []

    # -- the store and the policy --------------------------------------------------------------

    @property
    def store(self) -> SqlStore:
        if self._store is None:
            from payretry.store.sql import open_store

            db = self.settings.database
            self._store = open_store(
                db.url,
                auto_migrate=db.auto_migrate,
                pool_size=db.pool_size,
                statement_timeout=db.statement_timeout,
            )
        return self._store

    def job_reader(self) -> FindsJobs:
        """What reads one job for a command that reads it and exits (`status`): on a SQLite
        file at this payretry's schema, a reader over the sqlite3 module alone, which imports
        no SQLAlchemy (store/sqlite_read.py); on anything else, or once the store is open, the
        store."""
        if self._store is None:
            from payretry.store.sqlite_read import SqliteJobReader

            reader = SqliteJobReader.open(self.settings.database.url)
            if reader is not None:
                self._closers.append(reader.close)
                return reader
        return self.store

    @cached_property
    def policy(self) -> RetryPolicy:
        return self.settings.policy()

    # -- the processor -------------------------------------------------------------------------

    def built_processor(self, name: str | None = None) -> BuiltProcessor:
        name = name or self.settings.processor.name
        built = self._processors.get(name)
        if built is None:
            built = self._processors[name] = build_processor(name, self.settings, self.clock)
            self._closers.append(built.processor.close)
        return built

    def processor(self, name: str | None = None) -> Processor:
        return self.built_processor(name).processor

    def limiter(self) -> RateLimiter | None:
        rate = self.settings.runner.rate
        return RateLimiter(rate) if rate else None

    # -- passes over due jobs ------------------------------------------------------------------

    def runner(
        self, processor: str | None = None, *, stop: threading.Event | None = None
    ) -> Runner:
        """Attempts due jobs here (run-due and serve inline, retry now, the SQS worker)."""
        from payretry.service.runner import Runner

        built = self.built_processor(processor)
        runner = self.settings.runner
        return Runner(
            self.store,
            self.policy,
            built.processor,
            clock=self.clock,
            lease_for=self.settings.database.lock_timeout,
            batch_size=runner.batch_size,
            concurrency=runner.concurrency,
            limiter=self.limiter(),
            stop=stop,
            grace=runner.grace_period,
            customer_actions=built.customer_actions,
            max_rescues=runner.max_rescues,
        )

    @property
    def sqs_mode(self) -> bool:
        return self.settings.dispatch.mode == "sqs"

    def due_pass(self, processor: str | None = None, *, stop: threading.Event) -> DuePass:
        """What run-due and each serve tick do: attempt what is due here, or (sqs mode) send
        it to the queue for the workers."""
        if not self.sqs_mode:
            return self.runner(processor, stop=stop)
        from payretry.service.customer_actions import CustomerActionSettler
        from payretry.service.dispatcher import DispatchPass
        from payretry.service.duepass import DueSteps

        actions = self.built_processor(processor).customer_actions
        settler = None
        if actions is not None:
            settler = CustomerActionSettler(
                self.store,
                self.policy,
                actions,
                clock=self.clock,
                stop=stop,
                batch_size=self.settings.runner.batch_size,
            )
        steps = DueSteps(
            self.store, self.clock, settler, max_rescues=self.settings.runner.max_rescues
        )
        return DispatchPass(steps, self.dispatcher(), stop=stop)

    def operations(
        self, *, processor: str | None = None, attempts: bool = False, queueing: bool = False
    ) -> Operations:
        """Queue, status, cancel; with `attempts`, also retry now (through `processor`). With
        `queueing`, a processor that retries payments itself (Stripe Billing) is asked first
        whether a new job's payment is already being retried there. A cancel of a job waiting
        on the customer expires its Checkout Session through `processor` first."""
        from payretry.service.operations import Operations

        execution = self.runner(processor).execution if attempts else None
        elsewhere = None
        if queueing:  # built on first use: only a job naming a payment intent asks
            elsewhere = _OnFirstUse(lambda: self.built_processor(processor).retried_elsewhere)
        expiry = _ExpiryOnFirstUse(lambda: self.built_processor(processor).expires_actions)
        return Operations(
            self.store,
            self.policy,
            execution=execution,
            ledger=self.store,
            elsewhere=elsewhere,
            expiry=expiry,
            bound=self.settings.queue.bound(),
        )

    # -- SQS -----------------------------------------------------------------------------------

    def sqs_settings(self) -> SqsSettings:
        from payretry.dispatch.sqs import SqsSettings

        s = self.settings.sqs
        return SqsSettings(
            env=s.env,
            endpoint_url=s.endpoint_url,
            region=s.region,
            max_receive_count=s.max_receive_count,
            message_retention=s.message_retention,
            dlq_retention=s.dlq_retention,
            visibility_timeout=s.visibility_timeout,
        )

    def queue(self, *, dead_letters: bool = False) -> SqsQueue:
        from payretry.dispatch.sqs import SqsQueue

        queue = SqsQueue.open(self.sqs_settings(), dead_letters=dead_letters)
        self._closers.append(queue.close)
        return queue

    def dispatcher(self, queue: SqsQueue | None = None) -> Dispatcher:
        from payretry.service.dispatcher import Dispatcher

        sqs = self.settings.sqs
        return Dispatcher(
            self.store,
            queue or self.queue(),
            clock=self.clock,
            batch_size=self.settings.runner.batch_size,
            resend_after=sqs.resend_after,
            # A message not taken within its visibility timeout (plus the resend margin) of
            # falling due was lost outside payretry (a purged queue): sent again.
            lost_after=sqs.visibility_timeout + sqs.resend_after,
        )

    def dispatch_new(self, job_ids: Sequence[str] | None = None) -> int:
        """After a queue in sqs mode: what is due within 15 minutes is sent now (0 inline)."""
        if not self.sqs_mode:
            return 0
        try:
            dispatcher = self.dispatcher()
        except QueueError as exc:  # the jobs are stored; run-due or serve sends them
            import logging

            logging.getLogger("payretry").warning(
                "queued, but not sent to SQS now (%s); run-due or serve sends it", exc
            )
            return 0
        return dispatcher.dispatch_new(job_ids)

    def queue_depth(self) -> dict[str, Any] | None:
        """`stats` in sqs mode: messages visible, in flight, delayed, and dead; None inline."""
        if not self.sqs_mode:
            return None
        try:
            depth: dict[str, Any] = self.queue().depth().as_dict()
        except QueueError as exc:
            return {"queue": self.sqs_settings().queue_name, "error": str(exc)}
        depth.update(self.store.dispatch_counts())
        return depth

    def worker(self, processor: str | None = None, *, stop: threading.Event) -> Worker:
        from payretry.service.worker import Worker

        queue = self.queue()
        sqs, runner = self.settings.sqs, self.settings.runner
        return Worker(
            self.store,
            self.runner(processor, stop=stop),
            queue,
            self.dispatcher(queue),
            clock=self.clock,
            concurrency=runner.concurrency,
            wait_time=sqs.wait_time,
            visibility=sqs.visibility_timeout,
            failure_visibility=sqs.failure_visibility,
            grace=runner.grace_period,
            stop=stop,
        )

    # -- events --------------------------------------------------------------------------------

    @property
    def sink_names(self) -> list[str]:
        return configured(self.settings)

    def delivery(self, *, only: str | None = None, stop: threading.Event | None = None) -> Delivery:
        from payretry.service.delivery import Delivery

        built = build_sinks(self.settings, only=only, stop=stop)
        delivery = Delivery(
            self.store,
            built.sinks,
            gauges=built.gauges,
            clock=self.clock,
            batch_size=self.settings.events.batch_size,
            max_backoff=self.settings.events.max_backoff,
            stop=stop,
        )
        self._closers.append(delivery.close)
        return delivery

    def telemetry(self) -> Callable[[], Telemetry]:
        """Reads the numbers metrics are made of, now (for /metrics and the textfile)."""
        store, sinks, clock = self.store, self.sink_names, self.clock
        return lambda: store.telemetry(clock(), sinks)

    # -- the HTTP API's services (and the throttle `payretry retry` shares) ----------------------

    def tokens(self) -> Tokens:
        from payretry.service.tokens import Tokens
        from payretry.store.access import SqlTokens

        return Tokens(SqlTokens(self.store), self.settings.http.token_secret, self.clock)

    def throttle(self) -> RetryThrottle:
        from payretry.service.throttle import RetryThrottle
        from payretry.store.access import SqlThrottle

        t = self.settings.throttle
        return RetryThrottle(
            SqlThrottle(self.store),
            per_transaction=t.per_transaction,
            transaction_window=t.transaction_window,
            per_user=t.per_user,
            user_window=t.user_window,
        )

    def retry_requests(self, processor: str | None = None) -> RetryRequests:
        """Retries now as customers and operators ask for them: state checked, throttled,
        attempted here."""
        from payretry.service.throttle import RetryRequests

        return RetryRequests(self.operations(processor=processor, attempts=True), self.throttle())

    def idempotency(self) -> IdempotencyKeys:
        from payretry.service.idempotency import IdempotencyKeys
        from payretry.store.requests import SqlIdempotency

        return IdempotencyKeys(
            SqlIdempotency(self.store),
            self.clock,
            keep_for=self.settings.http.idempotency_ttl,
            lease_for=self.settings.database.lock_timeout,
        )

    def process_payment(self, processor: str | None = None) -> ProcessPayment:
        from payretry.service.process import ProcessPayment
        from payretry.store.requests import SqlFirstAttempts

        return ProcessPayment(
            SqlFirstAttempts(self.store),
            self.store,
            self.policy,
            self.processor(processor),
            clock=self.clock,
            lease_for=self.settings.database.lock_timeout,
            ledger=self.store,
            bound=self.settings.queue.bound(),
        )

    def revivals(self) -> Revivals:
        """New card data for a job by hand (`payretry update`, `PATCH /api/payments/retry`)."""
        from payretry.service.revival import Revivals

        return Revivals(self.store, self.store, self.policy)

    def webhook_secret(self) -> str | None:
        """The Stripe webhook endpoint's signing secret, checked; None when not configured."""
        from payretry.processors.stripe_webhooks import webhook_secret

        s = self.settings.stripe
        return webhook_secret(s.webhook_secret, s.webhook_secret_file)

    def webhooks(self) -> StripeWebhooks | None:
        """Stripe webhooks in (`POST /webhooks/stripe`); None when no secret is configured.
        With `[stripe] auto_queue`, a failure payretry did not make is checked against the
        PaymentIntent as Stripe has it now, so the API key is needed too."""
        secret = self.webhook_secret()
        if secret is None:
            return None
        from payretry.processors.stripe_webhooks import StripePayments, StripeWebhookVerifier
        from payretry.service.webhooks import StripeWebhooks

        payments = None
        auto_queue = self.settings.stripe.auto_queue
        if auto_queue:
            from payretry.processors.stripe_client import StripeRequests

            payments = StripePayments(StripeRequests(stripe_settings(self.settings)))
        return StripeWebhooks(
            self.store,
            self.store,
            StripeWebhookVerifier(secret),
            self.policy,
            self.operations(),
            clock=self.clock,
            auto_queue=auto_queue,
            payments=payments,
            default_window=self.settings.retry.window,
        )

    def lookups(self) -> JobLookups:
        from payretry.store.requests import SqlLookups

        return SqlLookups(self.store)

    # -- the daemon ----------------------------------------------------------------------------

    def daemon(self, processor: str | None = None, *, stop: threading.Event) -> Daemon:
        from payretry.daemon import Daemon

        return Daemon(
            self.store,
            self.due_pass(processor, stop=stop),
            stop=stop,
            interval=self.settings.runner.processing_interval,
            retention=self.settings.retention.period,
            ledger=self.store,
            ledger_retention=self.settings.ledger_retention(),
            clock=self.clock,
            delivery=self.delivery(stop=stop),
            events_interval=self.settings.events.interval,
        )

    def close(self) -> None:
        """Close what was built here, the last built first; the store last of all."""
        closers, self._closers = self._closers, []
        self._processors.clear()
        for close in reversed(closers):
            close()
        if self._store is not None and self._owns_store:
            self._store.close()
            self._store = None
