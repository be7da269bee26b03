"""``tune-head``: the head daemon's entry point and configuration."""

from __future__ import annotations

import argparse
import logging
import os
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
import psutil
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from proto.generated import tune_pb2_grpc
from tune_client.auth import SERVER_GRPC_OPTIONS, TokenInterceptor, add_port
from tune_client.config import default_storage_path
from tune_client.daemon import (
    EnvDefaultsParser,
    exit_with_parent,
    on_termination,
    setup_logging,
)
from tune_client.storage import is_uri, normalize_local
from tune_head.head import Head
from tune_head.object_port import ObjectPortServer
from tune_head.service import HeadService

log = logging.getLogger("tune_head")


@dataclass
class HeadConfig:
    host: str
    port: int
    storage: str
    token: str
    object_dir: str
    object_store_memory: int
    heartbeat_timeout_s: float
    log_level: str
    log_file: str | None
    parent_pid: int
    grace_period_s: float
    port_file: str | None = None
    worker_storage: str = "auto"
    mirror_dir: str = ""
    state_dir: str = ""
    metrics_port: int | None = None
    object_port: int | None = None
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""


def parse_config(argv: list[str] | None = None) -> HeadConfig:
    parser = EnvDefaultsParser("TUNE_HEAD", prog="tune-head", description=__doc__)
    parser.add_flag("--host", default="127.0.0.1", help="address to bind")
    parser.add_flag("--port", type=int, default=6380, help="port; 0 picks a free one")
    parser.add_flag(
        "--storage", default=None, help="default storage_path for experiments"
    )
    parser.add_flag(
        "--token", env=("TUNE_TOKEN",), default="", help="cluster token (required)"
    )
    parser.add_flag(
        "--object-dir",
        default=None,
        help="where objects are kept; they outlive a restart while an experiment "
        "uses them (default: <state dir>/objects)",
    )
    parser.add_flag(
        "--object-store-memory",
        type=int,
        default=None,
        help="bytes of objects kept in memory; the rest spill to --object-dir "
        "(default: 30%% of the machine's memory)",
    )
    parser.add_flag("--heartbeat-timeout", type=float, default=10.0)
    parser.add_flag("--log-level", default="INFO")
    parser.add_flag("--log-file", default=None)
    parser.add_flag("--parent-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_flag("--grace-period", type=float, default=5.0)
    parser.add_flag(
        "--port-file", default=None, help="write the bound port here (for --port 0)"
    )
    parser.add_flag(
        "--worker-storage",
        choices=("auto", "direct", "stream"),
        default="auto",
        help="how workers store trial files in a local --storage folder: 'direct' "
        "when every worker mounts it at the same path, 'stream' to send them to "
        "the head, 'auto' streams from workers on other machines",
    )
    parser.add_flag("--tls-cert", default="", help="PEM certificate: serve over TLS")
    parser.add_flag("--tls-key", default="", help="PEM private key of --tls-cert")
    parser.add_flag(
        "--tls-ca",
        default="",
        help="PEM CA certificate: also require every worker and client to show "
        "a certificate it signed (mutual TLS; needs --tls-cert)",
    )
    parser.add_flag(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics at http://HOST:PORT/metrics (off if unset)",
    )
    parser.add_flag(
        "--object-port",
        type=int,
        default=None,
        help="send objects to workers over this plain TCP port (0 picks a free "
        "one), faster than gRPC; off if unset, and not allowed with TLS",
    )
    parser.add_flag(
        "--state-dir",
        default="",
        help="where the head lists its live experiments, to reload them after a "
        "restart (default: <storage>/.tune_head)",
    )
    parser.add_flag(
        "--mirror-dir",
        default="",
        help="where results for bucket storage are kept before each upload",
    )
    args = parser.parse_args(argv)
    if args.object_port is not None and args.tls_cert:
        parser.error(
            "--object-port sends objects unencrypted, so it cannot be used with "
            "--tls-cert: drop --object-port and objects go over TLS gRPC"
        )
    if not args.token:
        parser.error(
            "a cluster token is required: pass --token or set TUNE_TOKEN (make one "
            "with: python -c 'import secrets; print(secrets.token_hex(16))')"
        )
    storage = args.storage or default_storage_path()
    state_dir = args.state_dir or _default_state_dir(storage)
    # Beside the list of live experiments, so a restarted head finds the
    # objects those experiments refer to.
    object_dir = args.object_dir or os.path.join(state_dir, "objects")
    return HeadConfig(
        host=args.host,
        port=args.port,
        storage=normalize_local(storage),
        token=args.token,
        object_dir=object_dir,
        object_store_memory=args.object_store_memory or default_object_memory(),
        heartbeat_timeout_s=args.heartbeat_timeout,
        log_level=args.log_level,
        log_file=args.log_file,
        parent_pid=args.parent_pid,
        grace_period_s=args.grace_period,
        port_file=args.port_file,
        worker_storage=args.worker_storage,
        mirror_dir=args.mirror_dir,
        state_dir=state_dir,
        metrics_port=args.metrics_port,
        object_port=args.object_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
    )


def _default_state_dir(storage: str) -> str:
    if is_uri(storage):
        return os.path.expanduser("~/.tune_head")
    return os.path.join(normalize_local(storage), ".tune_head")


def default_object_memory() -> int:
    """The default memory budget of the object store: 30% of the machine's."""
    return int(psutil.virtual_memory().total * 0.3)


def serve(config: HeadConfig) -> None:
    head = Head(
        config.storage,
        config.object_dir,
        heartbeat_timeout_s=config.heartbeat_timeout_s,
        object_store_memory=config.object_store_memory,
        mirror_dir=config.mirror_dir,
        worker_storage=config.worker_storage,
        state_dir=config.state_dir,
    )
    head.reload_experiments()
    if config.metrics_port is not None:
        from tune_head.metrics import HeadMetrics  # prometheus only when asked

        metrics = HeadMetrics(head)
        head.results_counter = metrics.results
        bound = metrics.serve(config.host, config.metrics_port)
        log.info("Prometheus metrics at http://%s:%d/metrics", config.host, bound)
    object_server = _serve_objects(head, config)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=256, thread_name_prefix="head-rpc"),
        interceptors=[TokenInterceptor(config.token)],
        options=SERVER_GRPC_OPTIONS,
        maximum_concurrent_rpcs=None,
    )
    tune_pb2_grpc.add_HeadServicer_to_server(HeadService(head), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = add_port(
        server,
        f"{config.host}:{config.port}",
        config.tls_cert,
        config.tls_key,
        client_ca=config.tls_ca,
    )
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    if config.port_file:
        _write_port_file(config.port_file, port)
    log.info(
        "tune-head listening on %s:%d, storage %s", config.host, port, config.storage
    )

    stopped = threading.Event()

    def shutdown(reason: str) -> None:
        if stopped.is_set():
            return
        log.info("tune-head shutting down: %s", reason)
        health_servicer.enter_graceful_shutdown()
        if object_server is not None:
            object_server.close()
        head.close()
        server.stop(config.grace_period_s).wait()  # calls in flight finish first
        stopped.set()

    on_termination(shutdown)
    exit_with_parent(config.parent_pid, shutdown)
    while not stopped.wait(0.5):
        pass
    log.info("tune-head stopped")


def _serve_objects(head: Head, config: HeadConfig) -> ObjectPortServer | None:
    """Start the object port when ``--object-port`` asks for it."""
    if config.object_port is None:
        return None
    server = ObjectPortServer(
        head.objects, config.token, config.host, config.object_port
    )
    server.start()
    head.object_port = server.port
    log.info("objects served to workers on %s:%d", config.host, server.port)
    return server


def _write_port_file(path: str, port: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    setup_logging(config.log_level, config.log_file)
    serve(config)


if __name__ == "__main__":
    main()
