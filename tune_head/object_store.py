"""The head's object store: immutable objects addressed by the hash of their bytes.

Layout of the object folder (``tune-head --object-dir``)::

    <object id>            one object file (see tune_client.object_format)
    <object id>.part.*     an upload in progress, never served
    refs/<experiment id>   the ids one unfinished experiment refers to (JSON)

An upload is written under a temporary name and renamed once its hash checks
out, so a half-uploaded object is never served. Objects always live as files,
so they survive a head restart; the refs files say which are still wanted.

Memory: the head never holds an object in its own heap. It streams files,
and the kernel keeps recently read or written file pages in memory (the page
cache), where same-machine workers map them too. ``memory_budget`` (``tune-head
--object-store-memory``) bounds how much of the store the head lets stay
resident: past it, the least recently used objects are written out and their
pages dropped (``posix_fadvise(DONTNEED)``), so they are read back from disk
when next pulled. Pages a trial still maps stay resident: the kernel never
drops mapped pages on this advice.

Release: when an experiment ends its refs file is removed and every object no
other refs file lists is deleted, unless a client announced it in the last
``PENDING_GRACE_S`` (it found the object present and is about to submit an
experiment that uses it) and has not submitted that experiment yet. At
start-up, objects no refs file lists and older than that grace are deleted:
they belong to experiments that ended while the head was down, or to uploads
whose submit never came. The head sweeps the
same way while it runs (``collect_orphans``), so uploads whose submit failed
do not pile up until its next restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024  # gRPC streams fastest (>1 GB/s on loopback) near 1 MiB
PENDING_GRACE_S = 600.0
REFS_DIR = "refs"
INCOMING_DIR = "incoming"  # object files clients on this machine hand over
_HEX = frozenset("0123456789abcdef")


class ObjectHashMismatch(Exception):
    """The uploaded bytes do not hash to the id they were sent under."""


class ObjectStore:
    def __init__(self, directory: str, memory_budget: int | None = None) -> None:
        self.directory = directory
        self.memory_budget = memory_budget
        self._refs_dir = os.path.join(directory, REFS_DIR)
        os.makedirs(self._refs_dir, exist_ok=True)
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}
        self._resident: OrderedDict[str, int] = OrderedDict()
        self.collect_orphans(at_start=True)

    # ---- addressing -----------------------------------------------------------

    def path_of(self, object_id: str) -> str:
        if len(object_id) != 64 or not set(object_id) <= _HEX:
            raise KeyError(f"{object_id!r} is not an object id")
        return os.path.join(self.directory, object_id)

    def contains(self, object_id: str) -> bool:
        try:
            return os.path.exists(self.path_of(object_id))
        except KeyError:
            return False

    def size_of(self, object_id: str) -> int:
        return os.path.getsize(self.path_of(object_id))

    def total_bytes(self) -> int:
        return sum(size for _, size in self._object_files())

    def _object_files(self) -> Iterator[tuple[str, int]]:
        for entry in os.scandir(self.directory):
            if len(entry.name) != 64:
                continue
            try:
                if entry.is_file():
                    yield entry.name, entry.stat().st_size
            except FileNotFoundError:
                continue  # released while we looked

    # ---- writing and reading ----------------------------------------------------

    def put_chunks(self, object_id: str, chunks: Iterable[bytes]) -> int:
        """Store an object from its chunks; returns its size."""
        final = self.path_of(object_id)
        tmp = f"{final}.part.{os.getpid()}.{threading.get_ident()}"
        digest = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    digest.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
        except BaseException:
            _remove(tmp)
            raise
        if digest.hexdigest() != object_id:
            _remove(tmp)
            raise ObjectHashMismatch(
                f"object {object_id[:12]} arrived with a different hash"
            )
        os.replace(tmp, final)
        self.announce([object_id])
        self._touch_resident(object_id, size)
        log.debug("stored object %s (%d bytes)", object_id[:12], size)
        return size

    def adopt(self, object_id: str, file_name: str) -> int:
        """Take an object file a client on this machine wrote into ``incoming``;
        returns its size.

        The file is renamed into the store, not copied, and not hashed again:
        no bytes travelled that could have been damaged, and a caller holding
        the token can run any code on the cluster anyway.
        """
        if not file_name or os.sep in file_name or file_name.startswith("."):
            raise ValueError(f"{file_name!r} is not a file name")
        final = self.path_of(object_id)
        source = os.path.join(self.directory, INCOMING_DIR, file_name)
        size = os.path.getsize(source)
        if os.path.exists(final):
            _remove(source)
        else:
            os.replace(source, final)
        self.announce([object_id])
        self._touch_resident(object_id, size)
        log.debug("adopted object %s (%d bytes) from %s", object_id[:12], size, source)
        return size

    def put_bytes(self, data: bytes) -> str:
        object_id = hashlib.sha256(data).hexdigest()
        if not self.contains(object_id):
            self.put_chunks(object_id, [data])
        return object_id

    def read_chunks(
        self, object_id: str, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        size = 0
        with open(self.path_of(object_id), "rb") as f:
            while chunk := f.read(chunk_size):
                size += len(chunk)
                yield chunk
        self._touch_resident(object_id, size)

    def mark_read(self, object_id: str, size: int) -> None:
        """``object_id`` was just sent whole: it becomes the most recently used."""
        self._touch_resident(object_id, size)

    def read_bytes(self, object_id: str) -> bytes:
        with open(self.path_of(object_id), "rb") as f:
            return f.read()

    # ---- the memory budget -----------------------------------------------------

    def _touch_resident(self, object_id: str, size: int) -> None:
        """Mark an object recently used; drop the coldest past the budget."""
        if self.memory_budget is None:
            return
        with self._lock:
            self._resident.pop(object_id, None)
            self._resident[object_id] = size
            cold = []
            total = sum(self._resident.values())
            while total > self.memory_budget and len(self._resident) > 1:
                cold_id, cold_size = self._resident.popitem(last=False)
                cold.append(cold_id)
                total -= cold_size
        if cold:
            threading.Thread(
                target=self._spill, args=(cold,), name="object-spill", daemon=True
            ).start()

    def _spill(self, object_ids: list[str]) -> None:
        """Write the objects out and let the kernel drop their pages."""
        for object_id in object_ids:
            try:
                fd = os.open(self.path_of(object_id), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                log.debug("object %s spilled to disk", object_id[:12])
            finally:
                os.close(fd)

    # ---- references and release ------------------------------------------------

    def announce(self, object_ids: Iterable[str]) -> None:
        """A client is about to submit an experiment using these objects."""
        now = time.monotonic()
        for object_id in object_ids:
            with self._lock:
                self._pending[object_id] = now
            try:
                os.utime(self.path_of(object_id))  # start-up clean-up spares it
            except (OSError, KeyError):
                pass

    def set_refs(self, owner: str, object_ids: Iterable[str]) -> None:
        """Record durably that ``owner`` (an experiment id) needs these objects.

        The refs file protects them from now on, so the announcements that
        kept them for this submit end: once ``owner`` ends, they are released.
        """
        object_ids = sorted(set(object_ids))
        path = os.path.join(self._refs_dir, owner)
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(object_ids, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        with self._lock:
            for object_id in object_ids:
                self._pending.pop(object_id, None)

    def drop_refs(self, owner: str) -> list[str]:
        """``owner`` needs nothing more; delete what nobody else refers to."""
        path = os.path.join(self._refs_dir, owner)
        try:
            with open(path) as f:
                dropped = set(json.load(f))
            os.remove(path)
        except (FileNotFoundError, ValueError):
            return []
        referenced = self._referenced()
        if referenced is None:
            return []
        wanted = referenced | self._recently_announced()
        released = sorted(dropped - wanted)
        for object_id in released:
            self._delete(object_id)
        if released:
            log.info(
                "released %d object(s) no experiment refers to any more",
                len(released),
            )
        return released

    def _referenced(self) -> set[str] | None:
        """Every id a refs file lists; None if one cannot be read (keep all)."""
        ids: set[str] = set()
        for entry in os.scandir(self._refs_dir):
            if ".tmp." in entry.name:
                continue
            try:
                with open(entry.path) as f:
                    ids.update(json.load(f))
            except (OSError, ValueError) as exc:
                log.warning(
                    "refs file %s is unreadable (%s); no object is "
                    "released until it is fixed or removed",
                    entry.path,
                    exc,
                )
                return None
        return ids

    def _recently_announced(self) -> set[str]:
        horizon = time.monotonic() - PENDING_GRACE_S
        with self._lock:
            for object_id in [i for i, t in self._pending.items() if t < horizon]:
                del self._pending[object_id]
            return set(self._pending)

    def _delete(self, object_id: str) -> None:
        with self._lock:
            self._resident.pop(object_id, None)
        _remove(self.path_of(object_id))

    def collect_orphans(self, at_start: bool = False) -> list[str]:
        """Delete objects no experiment refers to, uploaded over a grace ago.

        At start-up, half-written uploads go too; later they may still be
        arriving. Returns the ids deleted.
        """
        horizon = time.time() - PENDING_GRACE_S
        wanted = self._referenced()
        if wanted is None:
            return []
        wanted |= self._recently_announced()
        deleted = []
        for entry in os.scandir(self.directory):
            if ".part." in entry.name:
                if at_start:
                    _remove(entry.path)
            elif len(entry.name) == 64 and entry.name not in wanted:
                try:
                    if entry.stat().st_mtime >= horizon:
                        continue
                except FileNotFoundError:
                    continue
                self._delete(entry.name)
                deleted.append(entry.name)
                log.info("deleted object %s: no experiment refers to it", entry.name)
        return deleted


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
