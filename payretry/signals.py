"""SIGTERM and SIGINT: the first asks for a graceful stop, the second exits at once."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import Any

log = logging.getLogger("payretry")
Handlers = dict[int, Any]


def stop_on_signals(stop: threading.Event, grace: timedelta) -> Handlers:
    """Install the handlers (main thread only); returns the previous ones for restore_signals."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    count = {"n": 0}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        count["n"] += 1
        if count["n"] > 1:
            # Leases expire and the rescue re-sends those attempts with the same keys.
            os._exit(130)
        log.warning(
            "signal %d: no new attempts; in-flight ones get %s to finish (signal again to "
            "exit at once)",
            signum,
            grace,
        )
        stop.set()

    handler: Callable[[int, FrameType | None], None] = on_signal
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def restore_signals(previous: Handlers) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
