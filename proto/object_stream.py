"""How an object travels in a ``GetObject`` stream, and how it is read fast.

The stream is ObjectChunk messages laid out so that a reader can take each
chunk's bytes from the encoded message without decoding it:

- the first message names the object and its size, and holds no data;
- every later message holds only ``data`` (field 3).

A worker pulling a large object reads the raw messages (a gRPC method with no
response deserializer) and writes a view into each one, which spares the
protobuf decode and the copy of the bytes it makes; that is about a third of
the pull's CPU time on the receiving side. A message of any other layout is
decoded the ordinary way, so a reader never depends on the shortcut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import grpc

from proto.generated import tune_pb2

GET_OBJECT_METHOD = "/tune.Head/GetObject"
_DATA_TAG = (3 << 3) | 2  # field 3, length-delimited


def object_chunks(
    object_id: str, size: int, data: Iterable[bytes]
) -> Iterator[tune_pb2.ObjectChunk]:
    """The messages of one object's stream: its header, then its data."""
    yield tune_pb2.ObjectChunk(object_id=object_id, total_size=size)
    for chunk in data:
        yield tune_pb2.ObjectChunk(data=chunk)


def raw_get_object(
    channel: grpc.Channel,
) -> Callable[..., Iterator[bytes]]:
    """``GetObject`` on ``channel``, yielding each message still encoded."""
    return channel.unary_stream(
        GET_OBJECT_METHOD,
        request_serializer=tune_pb2.GetObjectRequest.SerializeToString,
        response_deserializer=None,
    )


def read_object_stream(messages: Iterable[bytes]) -> tuple[int, Iterator]:
    """The object's size, and its data as buffers, from encoded messages.

    Raises ``ValueError`` when the stream is empty.
    """
    messages = iter(messages)
    first_raw = next(messages, None)
    if first_raw is None:
        raise ValueError("the object stream ended before its first message")
    first = tune_pb2.ObjectChunk.FromString(first_raw)
    size = first.total_size or len(first.data)

    def data() -> Iterator:
        if first.data:
            yield first.data
        for raw in messages:
            yield data_of(raw)

    return size, data()


def data_of(raw: bytes) -> memoryview | bytes:
    """The ``data`` of one encoded ObjectChunk, as a view when it holds only data."""
    if raw and raw[0] == _DATA_TAG:
        length, start = _varint(raw, 1)
        if start + length == len(raw):
            return memoryview(raw)[start:]
    return tune_pb2.ObjectChunk.FromString(raw).data


def _varint(raw: bytes, position: int) -> tuple[int, int]:
    """The varint at ``position`` and the position after it."""
    value = shift = 0
    while position < len(raw):
        byte = raw[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
    return -1, position  # cut short: never matches a length
