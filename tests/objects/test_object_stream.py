"""The GetObject stream's layout, read without decoding each message."""

from __future__ import annotations

import pytest

from proto.generated import tune_pb2
from proto.object_stream import data_of, object_chunks, read_object_stream


def encoded(messages) -> list[bytes]:
    return [message.SerializeToString() for message in messages]


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300_000, 5 << 20])
def test_a_stream_reads_back_as_the_bytes_sent(size):
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    pieces = [payload[i : i + 65536] for i in range(0, size, 65536)]
    total, data = read_object_stream(encoded(object_chunks("id", size, pieces)))
    assert total == size
    assert b"".join(bytes(buffer) for buffer in data) == payload


def test_a_data_only_message_is_read_as_a_view_into_it():
    raw = tune_pb2.ObjectChunk(data=b"abc" * 1000).SerializeToString()
    data = data_of(raw)
    assert isinstance(data, memoryview) and data.obj is raw
    assert bytes(data) == b"abc" * 1000


@pytest.mark.parametrize(
    "message",
    [
        tune_pb2.ObjectChunk(object_id="id", total_size=3, data=b"abc"),
        tune_pb2.ObjectChunk(total_size=3, data=b"abc"),
        tune_pb2.ObjectChunk(),
    ],
)
def test_other_layouts_are_decoded_the_ordinary_way(message):
    assert bytes(data_of(message.SerializeToString())) == message.data


def test_a_stream_whose_first_message_carries_data_keeps_it():
    first = tune_pb2.ObjectChunk(object_id="id", total_size=6, data=b"abc")
    rest = tune_pb2.ObjectChunk(data=b"def")
    total, data = read_object_stream(encoded([first, rest]))
    assert total == 6 and b"".join(bytes(d) for d in data) == b"abcdef"


def test_an_empty_stream_is_an_error():
    with pytest.raises(ValueError, match="before its first message"):
        read_object_stream([])
