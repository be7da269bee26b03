"""The cluster token on the wire: a bearer token in each call's metadata.

The head checks it with ``TokenInterceptor``; only the gRPC health service is
open without it, so no unauthenticated caller reaches cloudpickled code.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

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

# A server answers the keepalive pings above without counting them as abuse:
# gRPC's default expects at most one ping in five minutes on an idle
# connection and otherwise closes it with "too_many_pings", which cut event
# streams and failed calls in flight.
SERVER_GRPC_OPTIONS = [
    *GRPC_OPTIONS,
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
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


@dataclass(frozen=True)
class TlsFiles:
    """PEM files a client or worker uses to reach a head served over TLS.

    ``ca`` verifies the head; ``cert`` and ``key`` identify this side to a
    head that checks client certificates (``tune-head --tls-ca``).
    """

    ca: str = ""
    cert: str = ""
    key: str = ""

    @classmethod
    def from_env(cls) -> TlsFiles:
        """``TUNE_TLS_CA``, ``TUNE_TLS_CERT`` and ``TUNE_TLS_KEY``."""
        return cls(
            os.environ.get("TUNE_TLS_CA", ""),
            os.environ.get("TUNE_TLS_CERT", ""),
            os.environ.get("TUNE_TLS_KEY", ""),
        )

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.ca and not self.cert and not self.key:
            return None
        if bool(self.cert) != bool(self.key):
            raise SystemExit(
                "a TLS client certificate needs its key, and a key its certificate: "
                "give both (--tls-cert and --tls-key, or TUNE_TLS_CERT and "
                "TUNE_TLS_KEY)"
            )
        return grpc.ssl_channel_credentials(
            root_certificates=read_file(self.ca, "CA certificate") if self.ca else None,
            private_key=read_file(self.key, "TLS key") if self.key else None,
            certificate_chain=read_file(self.cert, "TLS certificate")
            if self.cert
            else None,
        )


def open_channel(address: str, tls: TlsFiles | None = None) -> grpc.Channel:
    """A channel to the head; TLS when any TLS file is given."""
    credentials = (tls or TlsFiles()).credentials()
    if credentials is None:
        return grpc.insecure_channel(address, options=GRPC_OPTIONS)
    return grpc.secure_channel(address, credentials, options=GRPC_OPTIONS)


def add_port(
    server: grpc.Server,
    address: str,
    cert: str = "",
    key: str = "",
    client_ca: str = "",
) -> int:
    """Bind ``address``, with TLS when a certificate and key are given.

    With ``client_ca`` every caller must also present a certificate that CA
    signed (mutual TLS), on top of the cluster token.
    """
    if not cert and not key:
        if client_ca:
            raise SystemExit(
                "--tls-ca checks client certificates over TLS: give --tls-cert "
                "and --tls-key as well"
            )
        return server.add_insecure_port(address)
    if not cert or not key:
        raise SystemExit("TLS needs both --tls-cert and --tls-key")
    credentials = grpc.ssl_server_credentials(
        [(read_file(key, "TLS key"), read_file(cert, "TLS certificate"))],
        root_certificates=read_file(client_ca, "client CA certificate")
        if client_ca
        else None,
        require_client_auth=bool(client_ca),
    )
    return server.add_secure_port(address, credentials)
