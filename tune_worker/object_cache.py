"""The machine-local object cache: each object pulled from the head once per machine.

Objects live as files in shared memory (``/dev/shm/tune-objects-<uid>``, or
the worker's work dir where there is no ``/dev/shm``), and every trial process
on the machine memory-maps them, so a large input is in memory once however
many trials use it. Several worker processes on one machine share the folder;
everything that must be agreed between them is a file lock (``flock``), which
the kernel releases when a process dies:

- ``.locks/<id>``: held exclusively while one process pulls the object, so
  concurrent trial starts, in this process or another, cause one pull.
- each object file: every trial that uses the object holds a shared lock on it
  (taken by the worker for the trial's lifetime). Eviction takes an exclusive
  lock without waiting, so an object some trial holds is never evicted.
- ``.users``: a shared lock per live worker; the last one to leave empties the
  cache, so no memory stays taken after the workers are gone.

The byte budget (``tune-worker --object-cache-memory``) is enforced before
each pull by evicting the least recently used objects (file mtimes, touched
on every use) that nobody holds. An object larger than what can be freed is
still pulled, with a warning: a trial that needs it cannot run otherwise. An
object that does not fit in the shared-memory folder goes to the fallback
folder on disk instead.

When the head runs on this machine and its object folder is readable, objects
are mapped straight from the head's files and never copied.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator

log = logging.getLogger(__name__)

SHM_ROOT = "/dev/shm"
LOCKS = ".locks"
USERS = ".users"
STALE_PART_S = 3600.0


def default_directory(fallback: str) -> str:
    """The machine's shared cache folder in /dev/shm, or ``fallback``."""
    if os.path.isdir(SHM_ROOT) and os.access(SHM_ROOT, os.W_OK):
        return os.path.join(SHM_ROOT, f"tune-objects-{os.getuid()}")
    return fallback


class ObjectPullError(Exception):
    """The head's stream of an object ended before the whole object came."""


class ObjectCache:
    def __init__(
        self,
        directory: str,
        fetch: Callable[[str], tuple[int, Iterable]],
        budget_bytes: int | None = None,
        fallback_dir: str | None = None,
    ) -> None:
        self.directory = directory
        self.fallback_dir = fallback_dir if fallback_dir != directory else None
        self.budget_bytes = budget_bytes
        self._fetch = fetch
        self._head_dir = ""
        self._lock = threading.Lock()
        self._holds: dict[str, list[tuple[str, int]]] = {}
        for folder in self._folders():
            if folder:
                os.makedirs(os.path.join(folder, LOCKS), exist_ok=True)
        self._users_fd = os.open(
            os.path.join(directory, USERS), os.O_RDWR | os.O_CREAT, 0o600
        )
        fcntl.flock(self._users_fd, fcntl.LOCK_SH)
        self._remove_stale_parts()

    # ---- where objects are --------------------------------------------------

    def use_head_directory(self, directory: str) -> None:
        """Map objects from the head's folder (same machine) when it is readable."""
        usable = bool(directory) and os.access(directory, os.R_OK | os.X_OK)
        self._head_dir = directory if usable else ""
        if usable:
            log.info(
                "the head shares this machine: objects are read from %s", directory
            )

    def _folders(self) -> list[str]:
        return [d for d in (self.directory, self.fallback_dir) if d]

    def path_of(self, object_id: str) -> str:
        """Where ``object_id`` is on this machine, or where a pull would put it."""
        _check_id(object_id)
        if self._head_dir:
            head_path = os.path.join(self._head_dir, object_id)
            if os.path.exists(head_path):
                return head_path
        for folder in self._folders():
            path = os.path.join(folder, object_id)
            if os.path.exists(path):
                return path
        return os.path.join(self.directory, object_id)

    # ---- making objects present --------------------------------------------------

    def ensure(self, object_id: str) -> str:
        """The local path of ``object_id``, pulling it from the head if needed."""
        path = self.path_of(object_id)
        if os.path.exists(path):
            _touch(path)
            return path
        lock_fd = self._lock_pull(object_id)
        try:
            path = self.path_of(object_id)
            if not os.path.exists(path):
                path = self._pull(object_id)
        finally:
            os.close(lock_fd)
        return path

    def _lock_pull(self, object_id: str) -> int:
        """Exclusive right to pull ``object_id``; other pullers wait here."""
        lock_path = os.path.join(self.directory, LOCKS, object_id)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _pull(self, object_id: str) -> str:
        try:
            size, data = self._fetch(object_id)
        except ValueError as exc:
            raise ObjectPullError(f"pulling object {object_id[:12]}: {exc}") from exc
        self._make_room(size)
        folder = self._folder_for(size)
        path = os.path.join(folder, object_id)
        tmp = f"{path}.part.{os.getpid()}.{threading.get_ident()}"
        started = time.monotonic()
        try:
            self._write_whole(object_id, tmp, size, data)
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise
        elapsed = max(time.monotonic() - started, 1e-6)
        log.info(
            "pulled object %s (%d bytes) from the head in %.2f s (%.0f MB/s)",
            object_id[:12],
            size,
            elapsed,
            size / elapsed / 1e6,
        )
        return path

    def _write_whole(self, object_id: str, tmp: str, size: int, data: Iterator) -> None:
        """Write the stream to ``tmp``; fail unless exactly ``size`` bytes came.

        The head checked the hash when the object was uploaded, and the
        channel is authenticated, so the hash is not computed again here: it
        would cost about as much time as the transfer itself.
        """
        written = 0
        with open(tmp, "wb", buffering=0) as f:
            _reserve(f.fileno(), size)
            for buffer in _prefetched(data):
                f.write(buffer)
                written += len(buffer)
        if written != size:
            raise ObjectPullError(
                f"object {object_id[:12]} arrived cut short ({written} of {size} "
                "bytes); it is pulled again when the next trial needs it"
            )

    def _folder_for(self, size: int) -> str:
        """Shared memory if the object fits there, else the fallback folder."""
        if not self.fallback_dir:
            return self.directory
        stats = os.statvfs(self.directory)
        free = stats.f_bavail * stats.f_frsize
        return self.directory if size < free * 0.9 else self.fallback_dir

    # ---- holders ------------------------------------------------------------------

    def acquire(self, holder: str, object_ids: Iterable[str]) -> dict[str, str]:
        """Make the objects present and hold them for ``holder`` (a trial id).

        Held objects are never evicted, by this worker or another on the
        machine, until ``release(holder)``. Returns each object's path.
        """
        paths = {}
        try:
            for object_id in dict.fromkeys(object_ids):
                path, fd = self._hold(object_id)
                paths[object_id] = path
                with self._lock:
                    self._holds.setdefault(holder, []).append((object_id, fd))
        except BaseException:
            self.release(holder)
            raise
        return paths

    def _hold(self, object_id: str) -> tuple[str, int]:
        """A shared lock on the object's file, retried if it was just evicted."""
        while True:
            path = self.ensure(object_id)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            fcntl.flock(fd, fcntl.LOCK_SH)
            if _same_file(fd, path):
                return path, fd
            os.close(fd)

    def release(self, holder: str) -> None:
        """``holder`` no longer uses its objects; they may be evicted now."""
        with self._lock:
            held = self._holds.pop(holder, [])
        for _, fd in held:
            os.close(fd)

    def holders_of(self, object_id: str) -> list[str]:
        """The trials of this worker that hold ``object_id`` now."""
        with self._lock:
            return [
                h
                for h, held in self._holds.items()
                if any(i == object_id for i, _ in held)
            ]

    # ---- the budget -----------------------------------------------------------------

    def cached(self) -> list[tuple[str, int, float]]:
        """(path, size, last use) of every object pulled into the cache."""
        found = []
        for folder in self._folders():
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue  # removed under us (an operator cleaning /dev/shm)
            for entry in entries:
                try:
                    if len(entry.name) == 64 and entry.is_file():
                        stat = entry.stat()
                        found.append((entry.path, stat.st_size, stat.st_mtime))
                except FileNotFoundError:
                    continue  # evicted by another worker while we looked
        return found

    def _make_room(self, size: int) -> None:
        """Evict least recently used, unheld objects until ``size`` fits."""
        if self.budget_bytes is None:
            return
        entries = sorted(self.cached(), key=lambda e: e[2])
        used = sum(e[1] for e in entries)
        for path, object_size, _ in entries:
            if used + size <= self.budget_bytes:
                return
            if _evict(path):
                used -= object_size
                log.info(
                    "evicted object %s from the cache", os.path.basename(path)[:12]
                )
        if used + size > self.budget_bytes:
            log.warning(
                "object cache over budget: %d bytes held by running trials plus "
                "%d to pull exceed --object-cache-memory=%d",
                used,
                size,
                self.budget_bytes,
            )

    # ---- life cycle ----------------------------------------------------------------

    def close(self) -> None:
        """Drop this worker's holds; the machine's last worker empties the cache."""
        for holder in list(self._holds):
            self.release(holder)
        try:
            fcntl.flock(self._users_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._users_fd)
            return  # another worker still uses the cache
        for path, _, _ in self.cached():
            _evict(path)
        for folder in self._folders():
            for entry in os.scandir(os.path.join(folder, LOCKS)):
                _remove(entry.path)
        os.close(self._users_fd)

    def _remove_stale_parts(self) -> None:
        """Half-written pulls of a worker that died mid-pull."""
        horizon = time.time() - STALE_PART_S
        for folder in self._folders():
            for entry in os.scandir(folder):
                if ".part." in entry.name and entry.stat().st_mtime < horizon:
                    _remove(entry.path)


def _check_id(object_id: str) -> None:
    if len(object_id) != 64 or not all(c in "0123456789abcdef" for c in object_id):
        raise KeyError(f"{object_id!r} is not an object id")


def _touch(path: str) -> None:
    """Mark the object used now, for least-recently-used eviction."""
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only head folder; its objects are not evicted anyway


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _evict(path: str) -> bool:
    """Delete an object nobody holds; False if some trial holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    try:
        if _same_file(fd, path):
            os.remove(path)
            return True
        return False
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _reserve(fd: int, size: int) -> None:
    """Allocate the file's space before writing it.

    Writing into allocated shared memory is about twice as fast as growing
    the file page by page, and a cache folder too small for the object fails
    here, before any byte is received. A filesystem that cannot reserve space
    just grows the file as it is written.
    """
    if size == 0:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise


def _prefetched(buffers: Iterator, depth: int = 8) -> Iterator:
    """The buffers, received on another thread while this one writes them.

    Receiving and writing each take about as long as the other; overlapping
    them nearly doubles the pull rate.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def receive() -> None:
        try:
            for buffer in buffers:
                handoff.put(buffer)
            handoff.put(done)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the writer
            handoff.put(exc)

    threading.Thread(target=receive, name="object-pull", daemon=True).start()
    while True:
        item = handoff.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
