"""The head's object store: immutable objects addressed by the hash of their bytes.

Objects are kept as files in the head's object folder and streamed in chunks;
an object is written under a temporary name and renamed once its hash checks
out, so a half-uploaded object is never served.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

CHUNK_SIZE = 4 * 1024 * 1024


class ObjectHashMismatch(Exception):
    """The uploaded bytes do not hash to the id they were sent under."""


class ObjectStore:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()

    def path_of(self, object_id: str) -> str:
        if not object_id or not all(c in "0123456789abcdef" for c in object_id):
            raise KeyError(f"{object_id!r} is not an object id")
        return os.path.join(self.directory, object_id)

    def contains(self, object_id: str) -> bool:
        return os.path.exists(self.path_of(object_id))

    def size_of(self, object_id: str) -> int:
        return os.path.getsize(self.path_of(object_id))

    def put_chunks(self, object_id: str, chunks: Iterable[bytes]) -> int:
        """Store an object from its chunks; returns its size."""
        final = self.path_of(object_id)
        tmp = f"{final}.part.{threading.get_ident()}"
        digest = hashlib.sha256()
        size = 0
        with open(tmp, "wb") as f:
            for chunk in chunks:
                digest.update(chunk)
                f.write(chunk)
                size += len(chunk)
        if digest.hexdigest() != object_id:
            os.remove(tmp)
            raise ObjectHashMismatch(
                f"object {object_id[:12]} arrived with a different hash"
            )
        os.replace(tmp, final)
        log.debug("stored object %s (%d bytes)", object_id[:12], size)
        return size

    def put_bytes(self, data: bytes) -> str:
        object_id = hashlib.sha256(data).hexdigest()
        if not self.contains(object_id):
            self.put_chunks(object_id, [data])
        return object_id

    def read_chunks(self, object_id: str) -> Iterator[bytes]:
        with open(self.path_of(object_id), "rb") as f:
            while chunk := f.read(CHUNK_SIZE):
                yield chunk

    def read_bytes(self, object_id: str) -> bytes:
        with open(self.path_of(object_id), "rb") as f:
            return f.read()

    def total_bytes(self) -> int:
        return sum(
            entry.stat().st_size
            for entry in os.scandir(self.directory)
            if ".part." not in entry.name
        )
