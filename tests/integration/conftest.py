"""Fixtures of the integration tests: a client pointed at the test's daemons."""

from __future__ import annotations

import pytest

import tune_client as tune
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
