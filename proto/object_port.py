"""The head's object port: object files sent over a plain TCP connection.

A gRPC stream moves about 1 GB/s on loopback at best, and a worker's pull
costs a protobuf message per chunk on both ends. The object port skips all
of that: the head hands the file to the kernel (``sendfile``) and the worker
receives straight into the buffers it writes to its cache. gRPC stays the
way in for everything else, and for pulls whenever the port is off (the
default, and always under TLS) or cannot be reached.

One connection carries one object:

    request:  MAGIC | u16 token length | token | u16 id length | object id
    reply:    u8 status | u64 n | n bytes

With status ``OK`` the n bytes are the object; otherwise they are a UTF-8
message saying why it was refused. Integers are big-endian.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

MAGIC = b"TUNEOBJ1"
OK, UNAUTHENTICATED, NOT_FOUND, BAD_REQUEST = 0, 1, 2, 3
RECEIVE_BUFFER = 4 * 1024 * 1024
_REPLY = struct.Struct("!BQ")
_LENGTH = struct.Struct("!H")


class ObjectRefused(Exception):
    """The head answered, but would not send the object (bad token, unknown id)."""


def encode_request(token: str, object_id: str) -> bytes:
    token_bytes, id_bytes = token.encode(), object_id.encode()
    return b"".join(
        [
            MAGIC,
            _LENGTH.pack(len(token_bytes)),
            token_bytes,
            _LENGTH.pack(len(id_bytes)),
            id_bytes,
        ]
    )


def read_request(connection: socket.socket) -> tuple[str, str]:
    """The token and object id a client asked with; ``ValueError`` if malformed."""
    if receive_exactly(connection, len(MAGIC)) != MAGIC:
        raise ValueError("not an object request")
    token = _read_field(connection)
    object_id = _read_field(connection)
    return token, object_id


def _read_field(connection: socket.socket) -> str:
    (length,) = _LENGTH.unpack(receive_exactly(connection, _LENGTH.size))
    return receive_exactly(connection, length).decode()


def encode_reply_header(status: int, length: int) -> bytes:
    return _REPLY.pack(status, length)


def encode_refusal(status: int, message: str) -> bytes:
    text = message.encode()
    return _REPLY.pack(status, len(text)) + text


def pull(
    host: str, port: int, token: str, object_id: str, timeout_s: float = 5.0
) -> tuple[int, Iterator[bytearray]]:
    """Ask the head's object port for ``object_id``: its size and its bytes.

    Raises ``OSError`` when the port cannot be reached and ``ObjectRefused``
    when the head declines. The bytes come in buffers of ``RECEIVE_BUFFER``
    (the last one shorter); a connection that ends early ends the iterator,
    and the caller, which knows the size, tells the object came cut short.
    """
    connection = socket.create_connection((host, port), timeout=timeout_s)
    try:
        connection.sendall(encode_request(token, object_id))
        status, length = _REPLY.unpack(receive_exactly(connection, _REPLY.size))
        if status != OK:
            message = receive_exactly(connection, length).decode(errors="replace")
            raise ObjectRefused(message)
    except BaseException:
        connection.close()
        raise
    return length, _receive_object(connection, length)


def _receive_object(connection: socket.socket, size: int) -> Iterator[bytearray]:
    """Whole buffers of the object, each one new, so a consumer may keep them."""
    with connection:
        remaining = size
        while remaining:
            buffer = bytearray(min(remaining, RECEIVE_BUFFER))
            filled = _fill(connection, memoryview(buffer))
            remaining -= filled
            if filled < len(buffer):
                del buffer[filled:]
                if buffer:
                    yield buffer
                return
            yield buffer


def _fill(connection: socket.socket, view: memoryview) -> int:
    """Receive into ``view`` until it is full or the peer closes; bytes received."""
    filled = 0
    while filled < len(view):
        received = connection.recv_into(view[filled:])
        if not received:
            break
        filled += received
    return filled


def receive_exactly(connection: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    if _fill(connection, memoryview(buffer)) != size:
        raise ConnectionError("the connection closed in the middle of a message")
    return bytes(buffer)
