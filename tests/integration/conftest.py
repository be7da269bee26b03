"""Fixtures of the integration tests: a client pointed at the test's daemons."""

from __future__ import annotations

import pytest

import tune_client as tune
from tests.conftest import wait_for
from tune_client import cluster
from tune_client.cluster import HeadClient


@pytest.fixture
def connect(monkeypatch):
    """Point the client at the test's own daemons, and back afterwards.

    ``connect(daemons)`` returns a HeadClient for status queries;
    ``connect.init_kwargs`` are passed on to ``tune.init``.
    """

    def to(daemons) -> HeadClient:
        monkeypatch.setattr(cluster, "_client", None)
        tune.init(daemons.address, token=daemons.token, **to.init_kwargs)
        client = HeadClient(daemons.address, daemons.token, embedded=None)
        client.wait_ready()
        return client

    to.init_kwargs = {}
    yield to
    tune.init(None)


def start_head_and_one_worker(daemons, connect, *worker_args: str) -> HeadClient:
    """A real head and one worker started with ``worker_args``; the client
    points at them once the worker has joined."""
    daemons.start_head()
    daemons.start_worker(*worker_args)
    client = connect(daemons)
    wait_for(lambda: len(client.status().workers) == 1, 20, "the worker")
    return client
