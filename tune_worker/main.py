"""``tune-worker``: the worker daemon's entry point and configuration."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import secrets
import socket
import sys
import tempfile
import threading

import psutil

from tune_client.auth import TlsFiles
from tune_client.daemon import (
    EnvDefaultsParser,
    exit_with_parent,
    on_termination,
    setup_logging,
)
from tune_client.trial_output import OutputBudget
from tune_worker import DEFAULT_PRELOAD
from tune_worker.agent import WorkerAgent, WorkerConfig
from tune_worker.trial_processes import PRELOAD_FLAG, parse_preload

log = logging.getLogger("tune_worker")


def parse_config(
    argv: list[str] | None = None,
) -> tuple[WorkerConfig, argparse.Namespace]:
    parser = EnvDefaultsParser("TUNE_WORKER", prog="tune-worker", description=__doc__)
    parser.add_flag("--head", env=("TUNE_ADDRESS",), help="the head's HOST:PORT")
    parser.add_flag("--head-port-file", default="", help=argparse.SUPPRESS)
    parser.add_flag("--token", env=("TUNE_TOKEN",), default="", help="cluster token")
    parser.add_flag(
        "--tls-ca",
        env=("TUNE_TLS_CA",),
        default="",
        help="PEM CA certificate: reach the head over TLS",
    )
    parser.add_flag(
        "--tls-cert",
        env=("TUNE_TLS_CERT",),
        default="",
        help="PEM certificate this worker shows a head that checks them "
        "(tune-head --tls-ca)",
    )
    parser.add_flag(
        "--tls-key",
        env=("TUNE_TLS_KEY",),
        default="",
        help="PEM private key of --tls-cert",
    )
    parser.add_flag("--cpus", type=float, default=None, help="CPUs to offer")
    parser.add_flag("--gpus", type=float, default=None, help="GPUs to offer")
    parser.add_flag("--memory", type=float, default=None, help="bytes to offer")
    parser.add_flag(
        "--resources", default="{}", help="custom resources as JSON, e.g. '{\"a\": 1}'"
    )
    parser.add_flag("--work-dir", default=None, help="staging and object cache")
    parser.add_flag("--worker-id", default=None, help="stable id across restarts")
    parser.add_flag(
        "--object-cache-memory",
        type=int,
        default=None,
        help="bytes of objects this machine's cache keeps (default: 30%% of memory)",
    )
    parser.add_flag(
        "--object-cache-dir",
        default="",
        help="the machine's object cache (default: /dev/shm/tune-objects-<uid>)",
    )
    parser.add_flag("--node-ip", default=None, help="this machine's address")
    parser.add_flag(
        PRELOAD_FLAG,
        default=",".join(DEFAULT_PRELOAD),
        help="modules trials import, comma-separated, loaded once by the "
        "template trials are forked from; '' for none",
    )
    parser.add_flag(
        "--output-rate",
        type=int,
        default=OutputBudget.DEFAULT_BYTES_PER_S,
        help="bytes a second of each trial's output sent on to the client, "
        "after a burst of four seconds' worth; 0 for no limit. This worker's "
        "own output always has all of it",
    )
    parser.add_flag("--log-level", default="INFO")
    parser.add_flag("--log-file", default=None)
    parser.add_flag(
        "--health-port",
        type=int,
        default=None,
        help="serve the gRPC health service on this port (off if unset)",
    )
    parser.add_flag("--parent-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.head and not args.head_port_file:
        parser.error("--head HOST:PORT (or TUNE_ADDRESS) is required")
    config = WorkerConfig(
        head=args.head or "",
        head_port_file=args.head_port_file,
        token=args.token,
        resources=_resources(parser, args),
        work_dir=args.work_dir
        or os.path.join(tempfile.gettempdir(), f"tune_worker_{os.getpid()}"),
        worker_id=args.worker_id or f"{socket.gethostname()}-{secrets.token_hex(3)}",
        node_ip=args.node_ip or _node_ip_towards(args.head or "127.0.0.1"),
        tls=TlsFiles(args.tls_ca, args.tls_cert, args.tls_key),
        object_cache_dir=args.object_cache_dir,
        object_cache_memory=args.object_cache_memory
        or int(psutil.virtual_memory().total * 0.3),
        preload=parse_preload(args.preload),
        output_rate=args.output_rate,
    )
    if args.output_rate < 0:
        parser.error("--output-rate must be 0 (no limit) or more bytes a second")
    return config, args


def _resources(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    try:
        custom = json.loads(args.resources)
    except ValueError as exc:
        parser.error(
            f"--resources is not JSON ({exc}); write e.g. '{{\"highmem\": 1}}'"
        )
    if not isinstance(custom, dict) or not all(
        isinstance(v, (int, float)) for v in custom.values()
    ):
        parser.error("--resources must be a JSON object of numbers")
    resources = {k: float(v) for k, v in custom.items()}
    resources["cpu"] = float(args.cpus) if args.cpus is not None else os.cpu_count()
    resources["gpu"] = float(args.gpus) if args.gpus is not None else 0.0
    resources["memory"] = (
        float(args.memory)
        if args.memory is not None
        else float(psutil.virtual_memory().total)
    )
    return {k: v for k, v in resources.items() if v > 0}


def warn_of_missing_preloads(preload: tuple[str, ...]) -> list[str]:
    """Log each --preload module this machine cannot import, and return them.

    The template skips such a module without a word, so a misspelt name
    would only show as slow trial starts.
    """
    missing = [
        name for name in preload if importlib.util.find_spec(name.split(".")[0]) is None
    ]
    for name in missing:
        log.warning(
            "--preload module %r is not installed for %s; trials that need it "
            "will fail to import it. Install it, or drop it from --preload / "
            "TUNE_WORKER_PRELOAD.",
            name,
            sys.executable,
        )
    return missing


def _node_ip_towards(head: str) -> str:
    """The local address this machine uses to reach the head."""
    host = head.rsplit(":", 1)[0].strip("[]")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def _serve_health(port: int):
    """The standard gRPC health service, for probes; it needs no token."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"0.0.0.0:{port}")
    server.start()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC health service on port %d", bound)
    return server


def main(argv: list[str] | None = None) -> None:
    config, args = parse_config(argv)
    setup_logging(args.log_level, args.log_file)
    if not config.token:
        log.warning(
            "no cluster token given (--token or TUNE_TOKEN); the head will "
            "refuse this worker"
        )
    warn_of_missing_preloads(config.preload)
    os.makedirs(config.work_dir, exist_ok=True)
    agent = WorkerAgent(config)

    def shutdown(reason: str) -> None:
        threading.Thread(target=agent.stop, args=(reason,), daemon=True).start()

    on_termination(shutdown)
    exit_with_parent(args.parent_pid, shutdown)
    health = _serve_health(args.health_port) if args.health_port is not None else None
    log.info(
        "tune-worker %s starting with %s, head %s",
        config.worker_id,
        config.resources,
        config.head or "on this machine",
    )
    agent.run()
    if health is not None:
        health.stop(0)
    log.info("tune-worker stopped")


if __name__ == "__main__":
    main()
