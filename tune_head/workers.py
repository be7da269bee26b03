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

    def new_stream(self) -> int:
        """Start a new command stream; commands queued for an old one are dropped."""
        self.stream_epoch += 1
        self.outbox = queue.SimpleQueue()
        self.connected = True
        self.last_seen = time.monotonic()
        return self.stream_epoch
