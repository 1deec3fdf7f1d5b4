"""SQS mode for the commands: the queue, the dispatcher and the dispatching runner, built from
the settings. boto3 is imported only when one of these is called."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from payretry.cli._context import AppContext
from payretry.clock import utcnow
from payretry.errors import QueueError

if TYPE_CHECKING:
    from payretry.dispatch.sqs import SqsQueue, SqsSettings
    from payretry.service.dispatcher import Dispatcher
    from payretry.service.runner import Runner

log = logging.getLogger("payretry")


def sqs_mode(app: AppContext) -> bool:
    return bool(app.settings["dispatch.mode"] == "sqs")


def sqs_settings(app: AppContext) -> SqsSettings:
    from payretry.dispatch.sqs import SqsSettings

    s = app.settings
    return SqsSettings(
        env=s["sqs.env"],
        endpoint_url=s["sqs.endpoint_url"],
        region=s["sqs.region"],
        max_receive_count=s["sqs.max_receive_count"],
        message_retention=s["sqs.message_retention"],
        dlq_retention=s["sqs.dlq_retention"],
        visibility_timeout=s["sqs.visibility_timeout"],
    )


def open_queue(app: AppContext, *, dead_letters: bool = False) -> SqsQueue:
    from payretry.dispatch.sqs import SqsQueue

    return SqsQueue.open(sqs_settings(app), dead_letters=dead_letters)


def build_dispatcher(app: AppContext, queue: SqsQueue | None = None) -> Dispatcher:
    from payretry.service.dispatcher import Dispatcher

    s = app.settings
    return Dispatcher(
        app.store,
        queue or open_queue(app),
        clock=utcnow,
        batch_size=s["runner.batch_size"],
        resend_after=s["sqs.resend_after"],
    )


def dispatch_runner_class(app: AppContext) -> Callable[..., Runner]:
    """The Runner for run-due and serve in sqs mode: it dispatches instead of attempting."""
    from payretry.service.dispatcher import DispatchRunner

    return partial(DispatchRunner, build_dispatcher(app))


def dispatch_queued(app: AppContext, job_ids: list[str] | None = None) -> int:
    """After `queue` in sqs mode: retries due within 15 minutes go to the queue now (the
    others wait for run-due or serve). Returns how many were sent."""
    if not sqs_mode(app):
        return 0
    try:
        dispatcher = build_dispatcher(app)
        return dispatcher.dispatch(job_ids=job_ids)["dispatched"]
    except QueueError as exc:  # the job is stored; run-due or serve sends it
        log.warning("queued, but not sent to SQS now (%s); run-due or serve sends it", exc)
        return 0


def queue_depth(app: AppContext) -> dict[str, Any] | None:
    """`stats` in sqs mode: messages visible, in flight, delayed, and dead; None inline."""
    if not sqs_mode(app):
        return None
    try:
        queue = open_queue(app)
        try:
            depth: dict[str, Any] = queue.depth().as_dict()
        finally:
            queue.close()
    except QueueError as exc:
        return {"queue": sqs_settings(app).queue_name, "error": str(exc)}
    depth.update(app.store.dispatch_counts())
    return depth
