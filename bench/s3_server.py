"""An S3 endpoint on loopback (moto's server) for workloads that store to a bucket.

It runs as its own process from our venv, started by the harness before a run
and stopped after it, for three reasons: Ray's venv need not carry moto, the
server's CPU time does not share a GIL with either flavor's driver, and every
run starts with an empty bucket. Both flavors get the same endpoint through the
standard AWS variables, which botocore/s3fs and pyarrow's S3 filesystem read.

    python -m bench.s3_server BUCKET   # prints the endpoint URL, serves until
                                       # its stdin closes
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUCKET = "bench-bucket"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0


def serve(bucket: str) -> None:
    """Start moto, create the bucket, print the endpoint, wait for stdin to close.

    Waiting on stdin rather than a signal means the server also ends if the
    harness dies without cleaning up.
    """
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    # One access-log line per request would cost the server CPU in every run.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, **_boto_credentials()).create_bucket(
        Bucket=bucket
    )
    print(endpoint, flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


@contextmanager
def running(python: Path, log_path: Path) -> Iterator[dict[str, str]]:
    """Run a fresh endpoint with an empty bucket; yield the env to reach it.

    ``python`` must have moto installed (our venv). The server's own output
    goes to ``log_path`` so a failure to start can be read afterwards.
    """
    env = {**os.environ, **CREDENTIALS, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(python), "-m", "bench.s3_server", BUCKET],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            env=env,
        )
    try:
        endpoint = _read_endpoint(proc)
        yield {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "BENCH_S3_BUCKET": BUCKET,
        }
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_endpoint(proc: subprocess.Popen) -> str:
    """The first line the server prints; a silent server fails the run loudly."""
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    if not selector.select(timeout=START_TIMEOUT_S):
        proc.kill()
        raise RuntimeError(f"moto server gave no endpoint in {START_TIMEOUT_S:.0f} s")
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("http://"):
        proc.kill()
        raise RuntimeError(f"moto server failed to start (exit {proc.poll()})")
    return line


if __name__ == "__main__":
    serve(sys.argv[1] if len(sys.argv) > 1 else BUCKET)
