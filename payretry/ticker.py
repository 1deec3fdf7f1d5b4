"""A background thread that calls `tick()` every `interval` seconds while a `with` block runs:
the shape of the lease heartbeat, the SQS visibility keeper and the batched deleter."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self


class Ticker:
    def __init__(self, interval: float, name: str) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def should_start(self) -> bool:
        return True

    def closing(self) -> None:
        """Called once after the thread has stopped."""

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def __enter__(self) -> Self:
        if self.should_start():
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.closing()
