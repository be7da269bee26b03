"""The head over TLS: workers and clients that trust its certificate connect;
a plaintext client does not."""

from __future__ import annotations

import datetime
import ipaddress

import pytest

import tune_client as tune
from tests.conftest import wait_for
from tune_client import cluster
from tune_client.cluster import HeadClient
from tune_client.errors import ClusterError

x509 = pytest.importorskip("cryptography.x509")


def _self_signed(folder) -> tuple[str, str]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "head.pem", folder / "head.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def report_once(config):
    tune.report({"x": config["x"]})


def test_tls_cluster_runs_trials_and_refuses_plaintext(daemons, tmp_path, monkeypatch):
    cert, key = _self_signed(tmp_path)
    daemons.start_head("--tls-cert", cert, "--tls-key", key)
    daemons.start_worker("--tls-ca", cert)

    plain = HeadClient(daemons.address, daemons.token, embedded=None)
    with pytest.raises(ClusterError):
        plain.status()
    plain.close()

    monkeypatch.setenv("TUNE_TLS_CA", cert)
    client = HeadClient(daemons.address, daemons.token, embedded=None)
    wait_for(lambda: client.status().workers, 20, "the worker to join over TLS")
    client.close()
    monkeypatch.setattr(cluster, "_client", None)
    tune.init(daemons.address, token=daemons.token)
    try:
        results = tune.Tuner(
            report_once,
            param_space={"x": tune.grid_search([1, 2])},
            run_config=tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
        ).fit()
    finally:
        tune.init(None)
    assert sorted(r.metrics["x"] for r in results) == [1, 2]


def _issue(folder, name: str, ca_cert_path: str, ca_key_path: str) -> tuple[str, str]:
    """A client certificate for ``name``, signed by the CA in the given files."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert = x509.load_pem_x509_certificate(open(ca_cert_path, "rb").read())
    ca_key = serialization.load_pem_private_key(
        open(ca_key_path, "rb").read(), password=None
    )
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_mutual_tls_admits_only_callers_with_a_certificate_the_ca_signed(
    daemons, tmp_path, monkeypatch
):
    ca, ca_key = _self_signed(tmp_path)  # the head's certificate is the CA too
    worker_cert, worker_key = _issue(tmp_path, "worker", ca, ca_key)
    client_cert, client_key = _issue(tmp_path, "client", ca, ca_key)
    daemons.start_head("--tls-cert", ca, "--tls-key", ca_key, "--tls-ca", ca)
    daemons.start_worker(
        "--tls-ca", ca, "--tls-cert", worker_cert, "--tls-key", worker_key
    )

    monkeypatch.setenv("TUNE_TLS_CA", ca)
    anonymous = HeadClient(daemons.address, daemons.token, embedded=None)
    with pytest.raises(ClusterError):  # trusts the head, but shows no certificate
        anonymous.status()
    anonymous.close()

    monkeypatch.setenv("TUNE_TLS_CERT", client_cert)
    monkeypatch.setenv("TUNE_TLS_KEY", client_key)
    client = HeadClient(daemons.address, daemons.token, embedded=None)
    wait_for(lambda: client.status().workers, 20, "the worker to join over mTLS")
    client.close()
    monkeypatch.setattr(cluster, "_client", None)
    tune.init(daemons.address, token=daemons.token)
    try:
        results = tune.Tuner(
            report_once,
            param_space={"x": tune.grid_search([3])},
            run_config=tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
        ).fit()
    finally:
        tune.init(None)
    assert [r.metrics["x"] for r in results] == [3]
