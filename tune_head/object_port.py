"""Serving object files on the head's object port (``tune-head --object-port``).

See ``proto/object_port.py`` for why the port exists and what travels on it.
Each connection gets a thread that checks the token, then hands the object
file to the kernel with ``sendfile``: the bytes never enter Python.
"""

from __future__ import annotations

import hmac
import logging
import os
import socket
import threading

from proto import object_port
from tune_head.object_store import ObjectStore

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0
ACCEPT_RETRY_S = 0.5  # after a failed accept (out of file descriptors, ...)


class ObjectPortServer:
    def __init__(self, store: ObjectStore, token: str, host: str, port: int) -> None:
        self._store = store
        self._token = token.encode()
        self._listener = socket.create_server((host, port), backlog=128)
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()

    def start(self) -> None:
        threading.Thread(
            target=self._accept_forever, name="object-port", daemon=True
        ).start()

    def close(self) -> None:
        """Take no new connections; sends in progress finish on their threads."""
        self._closed.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # never connected, nothing to shut down
        self._listener.close()

    def _accept_forever(self) -> None:
        while not self._closed.is_set():
            try:
                connection, peer = self._listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                log.exception("object port: accept failed; still listening")
                self._closed.wait(ACCEPT_RETRY_S)
                continue
            threading.Thread(
                target=self._serve, args=(connection, peer), daemon=True
            ).start()

    def _serve(self, connection: socket.socket, peer: tuple) -> None:
        with connection:
            connection.settimeout(REQUEST_TIMEOUT_S)
            try:
                self._send_requested_object(connection, peer)
            except OSError as exc:
                log.info("object port: sending to %s stopped: %s", peer[0], exc)

    def _send_requested_object(self, connection: socket.socket, peer: tuple) -> None:
        try:
            token, object_id = object_port.read_request(connection)
        except (ValueError, UnicodeDecodeError) as exc:
            connection.sendall(
                object_port.encode_refusal(object_port.BAD_REQUEST, str(exc))
            )
            return
        if not hmac.compare_digest(token.encode(), self._token):
            log.warning("object port: %s sent a wrong token; refused", peer[0])
            connection.sendall(
                object_port.encode_refusal(
                    object_port.UNAUTHENTICATED, "the cluster token does not match"
                )
            )
            return
        try:
            file = open(self._store.path_of(object_id), "rb")
        except (FileNotFoundError, KeyError):
            connection.sendall(
                object_port.encode_refusal(
                    object_port.NOT_FOUND, f"no object {object_id[:12]}"
                )
            )
            return
        with file:
            size = os.fstat(file.fileno()).st_size
            connection.sendall(object_port.encode_reply_header(object_port.OK, size))
            connection.sendfile(file)
        self._store.mark_read(object_id, size)
