"""The worker's object cache: each object pulled from the head once per machine.

Trial processes on this machine read objects from the cache folder. When
several trials that need the same object start at once, one pull happens and
the others wait for it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator

from proto.generated import tune_pb2

log = logging.getLogger(__name__)


class ObjectCache:
    def __init__(
        self,
        directory: str,
        fetch: Callable[[str], Iterator[tune_pb2.ObjectChunk]],
    ) -> None:
        self.directory = directory
        self._fetch = fetch
        self._lock = threading.Lock()
        self._pulls: dict[str, threading.Lock] = {}
        os.makedirs(directory, exist_ok=True)

    def path_of(self, object_id: str) -> str:
        return os.path.join(self.directory, object_id)

    def ensure(self, object_id: str) -> str:
        """The local path of ``object_id``, pulling it from the head if needed."""
        path = self.path_of(object_id)
        if os.path.exists(path):
            return path
        with self._lock:
            pull_lock = self._pulls.setdefault(object_id, threading.Lock())
        with pull_lock:
            if not os.path.exists(path):
                self._pull(object_id, path)
        return path

    def _pull(self, object_id: str, path: str) -> None:
        tmp = f"{path}.part"
        size = 0
        with open(tmp, "wb") as f:
            for chunk in self._fetch(object_id):
                f.write(chunk.data)
                size += len(chunk.data)
        os.replace(tmp, path)
        log.info("pulled object %s (%d bytes) from the head", object_id[:12], size)
