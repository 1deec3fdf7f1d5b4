"""JSON Lines sink: every event as one JSON object per line, appended to a file or stdout."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from payretry.domain.events import Event
from payretry.domain.outbox import SinkError


class JsonLinesSink:
    """Appends and fsyncs each batch; `-` writes to stdout. A batch is written again after a
    crash between the write and the cursor's update: readers drop duplicates by `id`."""

    name = "file"

    def __init__(self, path: str) -> None:
        self.path = path

    def send(self, events: Sequence[Event]) -> None:
        text = "".join(json.dumps(e.as_dict(), separators=(",", ":")) + "\n" for e in events)
        if self.path == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise SinkError(f"cannot append to {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        pass
