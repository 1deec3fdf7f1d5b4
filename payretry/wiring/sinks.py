"""The sinks the settings configure, built with their own settings values. Each sink's library is
imported only when it is configured."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from payretry.config import Settings
from payretry.domain.outbox import GaugeSink, Sink
from payretry.errors import ConfigError

SINKS = ("file", "webhook", "segment", "statsd")


def configured(settings: Settings) -> list[str]:
    """The names of the sinks the settings configure, in delivery order."""
    wanted = {
        "file": settings.events.file,
        "webhook": settings.webhook.url,
        "segment": settings.segment.write_key,
        "statsd": settings.statsd.host,
    }
    return [name for name in SINKS if wanted[name]]


@dataclass
class BuiltSinks:
    sinks: list[Sink] = field(default_factory=list)
    gauges: list[GaugeSink] = field(default_factory=list)  # sinks that also report gauges


def build_sinks(
    settings: Settings, *, only: str | None = None, stop: threading.Event | None = None
) -> BuiltSinks:
    names = configured(settings)
    if only is not None:
        if only not in SINKS:
            raise ConfigError(f"{only!r} is not a sink ({', '.join(SINKS)})", field="--sink")
        if only not in names:
            raise ConfigError(f"sink {only!r} is not configured", field="--sink")
        names = [only]
    built = BuiltSinks()
    for name in names:
        if name == "file":
            from payretry.sinks.jsonl import JsonLinesSink

            built.sinks.append(JsonLinesSink(settings.events.file or "-"))
        elif name == "webhook":
            from payretry.sinks.webhook import WebhookSink

            hook = settings.webhook
            built.sinks.append(
                WebhookSink(
                    hook.url or "",
                    hook.secret or "",
                    timeout=hook.timeout.total_seconds(),
                    retries=hook.retries,
                    stop=stop,
                )
            )
        elif name == "segment":
            from payretry.sinks.segment import SegmentSink

            seg = settings.segment
            built.sinks.append(
                SegmentSink(seg.write_key or "", seg.host, timeout=seg.timeout.total_seconds())
            )
        else:
            from payretry.sinks.statsd import StatsdSink, tag_list

            statsd = settings.statsd
            sink = StatsdSink(statsd.host or "", statsd.port, tags=tag_list(statsd.tags))
            built.sinks.append(sink)
            built.gauges.append(sink)
    return built
