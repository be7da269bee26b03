"""The cluster token on the wire: a bearer token in each call's metadata.

The head checks it with ``TokenInterceptor``; only the gRPC health service is
open without it, so no unauthenticated caller reaches cloudpickled code.
"""

from __future__ import annotations

import hmac

import grpc

TOKEN_HEADER = "authorization"
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)
DENIED_MESSAGE = (
    "missing or wrong cluster token; pass the token the head was started with "
    "(tune.init(token=...), --token or TUNE_TOKEN)"
)

GRPC_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Daemons start side by side: retry a refused connection quickly instead of
    # gRPC's default of one second.
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def token_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return ((TOKEN_HEADER, f"Bearer {token}"),) if token else ()


def _deny(request_or_iterator, context: grpc.ServicerContext):
    context.abort(grpc.StatusCode.UNAUTHENTICATED, DENIED_MESSAGE)


def _denying_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that rejects the call."""
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_deny)
    return grpc.unary_unary_rpc_method_handler(_deny)


class TokenInterceptor(grpc.ServerInterceptor):
    """Rejects every call without the cluster token, except health checks."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def _authorized(self, metadata) -> bool:
        for key, value in metadata or ():
            if key == TOKEN_HEADER:
                return hmac.compare_digest(value.encode(), self._expected)
        return False

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(
            OPEN_METHOD_PREFIXES
        ) or self._authorized(handler_call_details.invocation_metadata):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        return None if handler is None else _denying_handler(handler)


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise SystemExit(f"cannot read the {what} {path}: {exc.strerror}") from exc


def open_channel(address: str, ca_file: str = "") -> grpc.Channel:
    """A channel to the head; TLS when a CA file is given (``TUNE_TLS_CA``)."""
    if not ca_file:
        return grpc.insecure_channel(address, options=GRPC_OPTIONS)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read_file(ca_file, "CA certificate")
    )
    return grpc.secure_channel(address, credentials, options=GRPC_OPTIONS)


def add_port(server: grpc.Server, address: str, cert: str = "", key: str = "") -> int:
    """Bind ``address``, with TLS when a certificate and key are given."""
    if not cert and not key:
        return server.add_insecure_port(address)
    if not cert or not key:
        raise SystemExit("TLS needs both --tls-cert and --tls-key")
    credentials = grpc.ssl_server_credentials(
        [(read_file(key, "TLS key"), read_file(cert, "TLS certificate"))]
    )
    return server.add_secure_port(address, credentials)
