"""uvicorn in a thread. payretry keeps the signals (uvicorn installs none off the main thread):
`stop()` drains (new requests get 503, /readyz turns 503), lets requests in flight finish
within the grace period, then closes. Used by `payretry api` alone and by `serve --http-port`
beside the ticker."""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta

import uvicorn

from payretry.api.app import create_app
from payretry.api.services import Services
from payretry.errors import PayretryError
from payretry.wiring import Wiring

log = logging.getLogger("payretry")


class ApiServer:
    def __init__(
        self, wiring: Wiring, addr: str, port: int, *, grace: timedelta | None = None
    ) -> None:
        self.services = Services(wiring)
        self.app = create_app(wiring, services=self.services)
        self.grace = grace if grace is not None else wiring.settings.runner.grace_period
        try:
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            self.socket = socket.socket(family, socket.SOCK_STREAM)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((addr, port))
        except OSError as exc:
            raise PayretryError(
                f"cannot serve the HTTP API on {addr}:{port}: {exc.strerror or exc}",
                field="--http-port",
            ) from None
        self.addr, self.port = self.socket.getsockname()[:2]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,  # a request line could carry what should never be logged
            lifespan="on",
            ws="websockets-sansio",
            timeout_graceful_shutdown=max(1, int(self.grace.total_seconds())),
            timeout_keep_alive=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name="payretry-http"
        )

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in str(self.addr) else self.addr
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise PayretryError(f"the HTTP API did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> bool:
        """Drain, then close; True when it stopped within the grace period."""
        self.services.draining.set()
        self.server.should_exit = True
        self.thread.join(self.grace.total_seconds() + 5)
        stopped = not self.thread.is_alive()
        if not stopped:
            log.error("the HTTP API was still closing after the grace period")
        self.socket.close()
        return stopped
