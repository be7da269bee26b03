"""The head's object port: what a worker receives, and what it is refused."""

from __future__ import annotations

import logging
import os
import socket

import grpc
import numpy as np
import pytest

from proto import object_port
from tune_client import object_codec
from tune_client.auth import token_metadata
from tune_client.cluster import HeadClient
from tune_head.object_port import ObjectPortServer
from tune_head.object_store import ObjectStore
from tune_worker.object_source import HeadObjectSource, host_of

TOKEN = "object-port-token"


@pytest.fixture
def served(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"))
    server = ObjectPortServer(store, TOKEN, "127.0.0.1", 0)
    server.start()
    yield store, server.port
    server.close()


def pulled(port: int, object_id: str, token: str = TOKEN) -> bytes:
    size, buffers = object_port.pull("127.0.0.1", port, token, object_id)
    data = b"".join(bytes(buffer) for buffer in buffers)
    assert len(data) == size
    return data


@pytest.mark.parametrize(
    "size",
    [0, 1, object_port.RECEIVE_BUFFER, 2 * object_port.RECEIVE_BUFFER + 12345],
)
def test_an_object_arrives_whole(served, size):
    store, port = served
    data = os.urandom(size)
    assert pulled(port, store.put_bytes(data)) == data


def test_a_wrong_token_is_refused_and_logged(served, caplog):
    store, port = served
    object_id = store.put_bytes(b"secret")
    with caplog.at_level(logging.WARNING, logger="tune_head.object_port"):
        with pytest.raises(object_port.ObjectRefused, match="token does not match"):
            pulled(port, object_id, token="wrong")
    assert "wrong token" in caplog.text


def test_an_unknown_object_is_named_in_the_refusal(served):
    _, port = served
    with pytest.raises(object_port.ObjectRefused, match="no object 000000000000"):
        pulled(port, "0" * 64)


def test_a_stranger_speaking_another_protocol_gets_an_answer(served):
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\n\r\n")
        reply = connection.recv(1024)
    assert reply[0] == object_port.BAD_REQUEST
    assert b"not an object request" in reply


def test_host_of_addresses():
    assert host_of("10.0.0.5:6380") == "10.0.0.5"
    assert host_of("[::1]:6380") == "::1"
    assert host_of("head.example") == "head.example"


def test_a_worker_pulls_over_grpc_when_the_port_cannot_be_reached(daemons, caplog):
    """A firewall that opens only the gRPC port: the pull still succeeds."""
    daemons.start_head()
    data = np.random.default_rng(3).bytes(3 * object_port.RECEIVE_BUFFER)
    encoded = object_codec.encode_bytes(data)
    client = HeadClient(daemons.address, daemons.token, embedded=None)
    client.wait_ready()
    client.put_object(encoded)
    closed_port = _a_port_nobody_listens_on()
    source = HeadObjectSource(daemons.token, token_metadata(daemons.token))
    with grpc.insecure_channel(daemons.address) as channel:
        source.connect(channel, daemons.address, closed_port)
        with caplog.at_level(logging.INFO, logger="tune_worker.object_source"):
            size, buffers = source.fetch(encoded.object_id)
            received = b"".join(bytes(buffer) for buffer in buffers)
    assert size == len(received)
    assert received == data
    assert f"cannot reach the head's object port 127.0.0.1:{closed_port}" in (
        caplog.text
    )
    assert "over gRPC" in caplog.text


def _a_port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
