#!/usr/bin/env python3
"""Ask a tune-head or a tune-worker whether it is serving, for probes.

Usage:
    python deploy/healthcheck.py HOST:PORT

HOST:PORT is the head's port (6380 by default) or a worker's
``--health-port``. Calls the standard gRPC health service
(``grpc.health.v1.Health/Check`` with the empty service name), which both
daemons answer without a cluster token, over plaintext (so not a head that
serves TLS).
Exits 0 when the head reports SERVING and 1 for anything else: another
status, a refused connection, a timeout (3 s), a malformed address or a
wrong command line (never 2, which Docker reserves in health checks).
Nothing but ``grpcio`` and ``grpcio-health-checking`` is needed, and both are
installed with the project.
"""

from __future__ import annotations

import sys

TIMEOUT_S = 3.0


def check(address: str, timeout_s: float = TIMEOUT_S) -> tuple[bool, str]:
    """Return (serving, a one-line description of what the daemon said)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        name = code.name if code is not None else "ERROR"
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return False, f"{name}: {details}"
    except ValueError as exc:  # e.g. an address gRPC cannot parse
        return False, f"bad address {address!r}: {exc}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, status


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 1
    address = argv[0]
    serving, status = check(address)
    print(f"{address}: {status}", file=sys.stdout if serving else sys.stderr)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
