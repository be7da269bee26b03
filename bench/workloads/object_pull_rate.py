"""Object transfer rates over loopback: upload to the head, pull to a worker.

Ours alone (Ray has no single figure like it; run.py's ``object_pull``): it
starts one tune-head with an object port, uploads a random object of
``BENCH_OBJECT_MB`` (default 1024) megabytes with the client's
``put_object``, then pulls it four ways and prints each rate: the gRPC stream
alone, the gRPC stream into a worker's object cache (written to /dev/shm),
the object port into a worker's cache (what a worker on another machine
does; the headline ``pull_gb_s``, target 1 GB/s), and a cache that shares
the head's machine (mapped from the head's folder, no copy).

    .venv/bin/python bench/workloads/object_pull_rate.py
"""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np

from proto.generated import tune_pb2
from proto.object_stream import raw_get_object, read_object_stream
from tune_client import object_codec
from tune_client.auth import GRPC_OPTIONS, token_metadata
from tune_client.cluster import HeadClient
from tune_worker.object_cache import ObjectCache
from tune_worker.object_source import HeadObjectSource

SIZE = int(os.environ.get("BENCH_OBJECT_MB", "1024")) * 1_000_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_head(
    folder: str, token: str, object_port: int
) -> tuple[subprocess.Popen, str]:
    port_file = os.path.join(folder, "port")
    head = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tune_head",
            "--port",
            "0",
            "--port-file",
            port_file,
            "--token",
            token,
            "--object-dir",
            os.path.join(folder, "objects"),
            "--storage",
            folder,
            "--object-port",
            str(object_port),
        ],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not os.path.exists(port_file):
        if time.monotonic() > deadline or head.poll() is not None:
            raise SystemExit("tune-head did not start")
        time.sleep(0.05)
    with open(port_file) as f:
        return head, f"127.0.0.1:{f.read().strip()}"


def rate(label: str, metric: str, seconds: float) -> None:
    gb_s = SIZE / seconds / 1e9
    print(f"{label:42} {gb_s:6.2f} GB/s ({seconds:.2f} s)")
    print(f"BENCH_METRIC {metric}={gb_s:.3f} GB/s", flush=True)


def main() -> None:
    token = secrets.token_hex(8)
    with tempfile.TemporaryDirectory() as folder:
        object_port = free_port()
        head, address = start_head(folder, token, object_port)
        try:
            client = HeadClient(address, token, embedded=None)
            client.wait_ready()
            encoded = object_codec.encode_bytes(np.random.default_rng(0).bytes(SIZE))
            started = time.perf_counter()
            client.put_object(encoded)
            rate(
                "upload (client -> head)", "upload_gb_s", time.perf_counter() - started
            )
            object_id = encoded.object_id
            del encoded  # the pulls below get the memory a worker would have
            measure_pulls(address, token, object_id, folder, object_port)
        finally:
            head.terminate()
            head.wait()


def measure_pulls(
    address: str, token: str, object_id: str, folder: str, object_port: int
) -> None:
    channel = grpc.insecure_channel(address, options=GRPC_OPTIONS)
    get_object = raw_get_object(channel)

    def fetch(oid: str):
        request = tune_pb2.GetObjectRequest(object_id=oid)
        return get_object(request, metadata=token_metadata(token))

    def fetch_over_grpc(oid: str):
        return read_object_stream(fetch(oid))

    over_port = HeadObjectSource(token, token_metadata(token))
    over_port.connect(channel, address, object_port)

    started = time.perf_counter()
    size, data = read_object_stream(fetch(object_id))
    received = sum(len(buffer) for buffer in data)
    assert received == size == SIZE
    rate("pull, gRPC stream only", "stream_gb_s", time.perf_counter() - started)

    shm = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    for label, metric, source in [
        ("pull over gRPC into a worker cache", "grpc_pull_gb_s", fetch_over_grpc),
        ("pull over the object port into a cache", "pull_gb_s", over_port.fetch),
    ]:
        cache = ObjectCache(tempfile.mkdtemp(dir=shm), source)
        started = time.perf_counter()
        cache.ensure(object_id)
        rate(label, metric, time.perf_counter() - started)
        cache.close()  # the last user leaves: the pulled copy is removed

    local = ObjectCache(tempfile.mkdtemp(dir=shm), fetch_over_grpc)
    local.use_head_directory(os.path.join(folder, "objects"))
    started = time.perf_counter()
    path = local.ensure(object_id)
    elapsed = time.perf_counter() - started
    rate("same machine: map the head's file", "same_machine_gb_s", elapsed)
    assert path.startswith(folder)
    local.close()
    shutil.rmtree(shm, ignore_errors=True)
    channel.close()


if __name__ == "__main__":
    main()
