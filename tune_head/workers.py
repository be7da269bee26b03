"""The head's view of connected workers."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field

from proto.generated import tune_pb2


@dataclass
class WorkerHandle:
    """A registered worker and the command queue of its stream."""

    worker_id: str
    hostname: str
    node_ip: str
    resources: dict[str, float]
    last_seen: float = field(default_factory=time.monotonic)
    connected: bool = False
    stream_epoch: int = 0
    outbox: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)

    def send(self, command: tune_pb2.HeadCommand) -> None:
        self.outbox.put(command)

    def registered_again(self) -> None:
        """The worker left its old stream: end it and drop what was queued for it.

        What it did not receive is settled by the registration itself (its
        list of running trials); commands queued from now on wait for the
        new stream.
        """
        self.stream_epoch += 1
        self.outbox = queue.SimpleQueue()
        self.connected = False

    def new_stream(self) -> int:
        """Start the command stream that follows a registration."""
        self.stream_epoch += 1
        self.connected = True
        self.last_seen = time.monotonic()
        return self.stream_epoch
