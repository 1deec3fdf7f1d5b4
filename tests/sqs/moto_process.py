"""The moto server in a process of its own: `python -m tests.sqs.moto_process` prints the port it
listens on (127.0.0.1, a free port) and serves until stdin closes or it is terminated.

A process of its own, so that its work does not share the tests' interpreter lock. Two fixes
to moto's SQS, below, make it as dependable as the service it stands for: receives that do not
recount the whole queue per message, and queues safe under concurrent requests.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.core.utils import unix_time
from moto.server import ThreadedMotoServer
from moto.sqs.models import Queue, SQSBackend


def retention_check_without_recounting(self: Any, queue_name: str, message: Any) -> bool:
    """moto's own check rebuilds every queue attribute, counting every message three times,
    for each message it returns: a receive from a queue of 1,000 took 1.6 s. The same rule
    (sent + retention period > now), reading the one attribute it needs."""
    queue = self.get_queue(queue_name)
    retained_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return bool(retained_until > unix_time())


def one_at_a_time_per_queue() -> None:
    """moto's queue is not thread-safe: a delete rebuilds the message list outside the lock
    that a send appends under, so a message sent meanwhile is lost (SQS never loses one), and
    a receive iterates sets that others change (a 500). Every change to a queue's messages is
    made here under that queue's own lock; a long poll's wait releases it, as moto's does."""
    deleting = Queue.delete_message
    receiving = SQSBackend.receive_message
    changing = SQSBackend.change_message_visibility

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            deleting(self, receipt_handle)

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with self.get_queue(queue_name)._messages_lock:
            return receiving(self, queue_name, *args, **kwargs)

    def change_message_visibility(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with self.get_queue(queue_name)._messages_lock:
            return changing(self, queue_name, *args, **kwargs)

    Queue.delete_message = delete_message  # type: ignore[method-assign]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    SQSBackend.change_message_visibility = change_message_visibility  # type: ignore[method-assign]


def main() -> None:
    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        retention_check_without_recounting
    )
    one_at_a_time_per_queue()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    sys.stdin.read()  # until the tests close it
    server.stop()


if __name__ == "__main__":
    main()
