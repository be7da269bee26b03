"""Prometheus metrics of the head, read from its state when scraped.

Nothing is counted on the result path except one counter increment per batch,
so scraping costs the head nothing between scrapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from tune_head.head import Head


class HeadCollector:
    """Gauges computed from the head's state at scrape time."""

    def __init__(self, head: Head) -> None:
        self.head = head

    def collect(self):
        head = self.head
        with head.lock:
            workers = len(head.workers)
            counts: dict[str, int] = {}
            for exp in head.experiments.values():
                for status, n in exp.controller.counts_by_status().items():
                    counts[status] = counts.get(status, 0) + n
            running = sum(not e.finished for e in head.experiments.values())
        yield GaugeMetricFamily("tune_workers", "Workers connected", value=workers)
        trials = GaugeMetricFamily("tune_trials", "Trials by state", labels=["state"])
        for status in ("PENDING", "RUNNING", "TERMINATED", "ERROR"):
            trials.add_metric([status], counts.get(status, 0))
        yield trials
        yield GaugeMetricFamily(
            "tune_experiments_running", "Experiments not yet ended", value=running
        )
        yield GaugeMetricFamily(
            "tune_object_store_bytes",
            "Bytes of objects the head holds",
            value=head.objects.total_bytes(),
        )


class HeadMetrics:
    def __init__(self, head: Head) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(HeadCollector(head))
        self.results = Counter(
            "tune_results", "Results received from trials", registry=self.registry
        )

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics over HTTP; returns the bound port."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return server.server_port
