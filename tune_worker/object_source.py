"""Where a worker pulls objects from: the head's object port, else gRPC.

The object port (``tune-head --object-port``) sends the file with no
per-chunk work on either end, so it is preferred. When the head has none, or
it cannot be reached (a firewall that opens only the gRPC port), pulls go
through the head's ``GetObject`` stream, which always works; a port that
failed is not tried again until the worker registers anew.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator

import grpc

from proto import object_port
from proto.generated import tune_pb2
from proto.object_stream import raw_get_object, read_object_stream

log = logging.getLogger(__name__)


class HeadObjectSource:
    def __init__(self, token: str, metadata: tuple) -> None:
        self._token = token
        self._metadata = metadata
        self._lock = threading.Lock()
        self._get_object: Callable[..., Iterator[bytes]] | None = None
        self._port_address: tuple[str, int] | None = None

    def connect(self, channel: grpc.Channel, head: str, port: int) -> None:
        """Pull through ``channel`` from now on, and through ``port`` on the
        head's host (``head`` is the address dialled for gRPC) when not 0."""
        with self._lock:
            self._get_object = raw_get_object(channel)
            self._port_address = (host_of(head), port) if port else None

    def fetch(self, object_id: str) -> tuple[int, Iterable]:
        """The object's size and its bytes, as buffers in order."""
        with self._lock:
            address, get_object = self._port_address, self._get_object
        if address is not None:
            try:
                size, data = object_port.pull(*address, self._token, object_id)
                _log_pull(object_id, size, "the head's object port")
                return size, data
            except OSError as exc:
                self._give_up_on_port(address, exc)
            except object_port.ObjectRefused as exc:
                log.warning(
                    "the head's object port refused object %s (%s); pulling it "
                    "over gRPC",
                    object_id[:12],
                    exc,
                )
        if get_object is None:
            raise ConnectionError("not connected to the head yet")
        request = tune_pb2.GetObjectRequest(object_id=object_id)
        size, data = read_object_stream(get_object(request, metadata=self._metadata))
        _log_pull(object_id, size, "gRPC")
        return size, data

    def _give_up_on_port(self, address: tuple[str, int], exc: OSError) -> None:
        with self._lock:
            if self._port_address == address:
                self._port_address = None
        log.warning(
            "cannot reach the head's object port %s:%d (%s); objects are pulled "
            "over gRPC until the worker reconnects. Open that port to this "
            "machine for faster pulls.",
            address[0],
            address[1],
            exc,
        )


def _log_pull(object_id: str, size: int, route: str) -> None:
    log.info("pulling object %s (%d bytes) over %s", object_id[:12], size, route)


def host_of(address: str) -> str:
    """The host of ``HOST:PORT`` (``[::1]:6380`` gives ``::1``)."""
    host = address.rsplit(":", 1)[0] if ":" in address else address
    return host.strip("[]")
