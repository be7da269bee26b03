"""Connecting to a cluster: ``init``, the embedded fallback and the head client.

``init(address, token=...)`` picks a cluster; without it ``TUNE_ADDRESS`` and
``TUNE_TOKEN`` are read; without those an embedded cluster is started. gRPC
status codes from the head are turned back into this package's exceptions.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc

from proto.generated import tune_pb2, tune_pb2_grpc
from tune_client import storage
from tune_client.auth import TlsFiles, open_channel, token_metadata
from tune_client.config import default_storage_path
from tune_client.embedded import EmbeddedCluster
from tune_client.errors import (
    AuthenticationError,
    ClusterError,
    RestoreError,
    TuneConfigError,
    TuneError,
)
from tune_client.object_codec import EncodedObject, encode_bytes
from tune_client.trainable import ObjectRef
from tune_client.upload_progress import UploadProgress

log = logging.getLogger(__name__)

UPLOAD_CHUNK = 1024 * 1024  # see tune_head.object_store.CHUNK_SIZE
CONNECT_TIMEOUT_S = 30.0

_lock = threading.Lock()
_client: HeadClient | None = None
_embedded: EmbeddedCluster | None = None
_init_args: dict = {}


def init(
    address: str | None = None,
    *,
    token: str | None = None,
    working_dir: str | None = None,
    log_to_driver: bool = True,
) -> None:
    """Choose the cluster to submit to; ``None`` means the embedded cluster.

    ``log_to_driver=False`` keeps trials' output off this process's terminal
    (it is still in the workers' own output).
    """
    global _client
    with _lock:
        if _client is not None:
            _client.close()
            _client = None
        _init_args.clear()
        _init_args.update(
            address=address,
            token=token,
            working_dir=working_dir,
            log_to_driver=log_to_driver,
        )


def log_to_driver() -> bool:
    """Whether ``fit()`` prints what trials write (``tune.init``)."""
    return bool(_init_args.get("log_to_driver", True))


def working_dir() -> str:
    """The folder ``tune.init(working_dir=...)`` ships to every worker, or ""."""
    folder = _init_args.get("working_dir") or ""
    if folder and not os.path.isdir(folder):
        raise TuneConfigError(
            f"tune.init(working_dir={folder!r}): no such folder; pass the folder "
            "holding the modules your trainable imports."
        )
    return os.path.abspath(folder) if folder else ""


def workers_can_import(module_name: str, module_file: str) -> bool:
    """Whether trial processes can import ``module_name`` as this process did.

    The embedded worker gets this process's import path when it starts, so it
    imports any module importable then; another cluster needs ``working_dir``.
    """
    if _cluster_address():
        roots = [working_dir()] if _init_args.get("working_dir") else []
    elif _embedded is None:
        return True
    else:
        roots = _embedded.import_paths
    relative = os.path.join(*module_name.split("."))
    candidates = {f"{relative}.py", os.path.join(relative, "__init__.py")}
    return any(
        os.path.join(root, candidate) == module_file
        for root in roots
        for candidate in candidates
    )


def _cluster_address() -> str:
    """The head chosen with ``init`` or ``TUNE_ADDRESS``; "" for the embedded one."""
    return _init_args.get("address") or os.environ.get("TUNE_ADDRESS") or ""


def storage_path_for(requested: str | None, filesystem: Any = None) -> str:
    """Where an experiment goes, known before any cluster is started.

    As asked, else the embedded cluster's default folder; "" on a cluster the
    client did not start, whose head then uses its own ``--storage``.
    """
    if requested:
        return storage.resolve(requested, filesystem)
    if filesystem is not None:
        raise TuneConfigError(
            "RunConfig(storage_filesystem=...) was given without storage_path. "
            "Name the folder in that filesystem too, e.g. "
            'RunConfig(storage_path="bucket/prefix", storage_filesystem=fs).'
        )
    return "" if _cluster_address() else default_storage_path()


def shutdown() -> None:
    """Disconnect, and stop the embedded cluster if this process started one."""
    global _client, _embedded
    with _lock:
        if _client is not None:
            _client.close()
        if _embedded is not None:
            _embedded.stop()
        _client = _embedded = None


def get_client() -> HeadClient:
    """The connection to the chosen cluster, started or opened on first use."""
    global _client, _embedded
    with _lock:
        if _client is not None:
            return _client
        address = _cluster_address()
        token = _init_args.get("token") or os.environ.get("TUNE_TOKEN", "")
        if address:
            _client = HeadClient(address, token, embedded=None)
        else:
            _embedded = _running_embedded_cluster()
            _embedded.wait_bound()
            _client = HeadClient(_embedded.address, _embedded.token, _embedded)
        _client.wait_ready()
        return _client


def start_embedded_early() -> None:
    """Start the embedded cluster's daemons without waiting for them, when
    this process will use it: they boot while the caller still works."""
    global _embedded
    with _lock:
        if _client is None and not _cluster_address():
            _embedded = _running_embedded_cluster()


def _running_embedded_cluster() -> EmbeddedCluster:
    """This process's embedded cluster, started on first use.

    ``init`` only disconnects: switching to another cluster and back reuses
    the embedded one instead of starting a second beside it. The caller holds
    ``_lock``.
    """
    if _embedded is not None and _embedded.is_alive():
        return _embedded
    if _embedded is not None:
        _embedded.stop()
    return EmbeddedCluster(default_storage_path()).start()


def map_rpc_error(exc: grpc.RpcError, doing: str) -> TuneError:
    """The package exception for a failed call, keeping the head's message."""
    code, details = exc.code(), exc.details()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return AuthenticationError(f"{doing}: {details}")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return RestoreError(f"{doing}: {details}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return ClusterError(
            f"{doing}: the head is unreachable ({details}). Check the address "
            "given to tune.init() or TUNE_ADDRESS, and that tune-head runs."
        )
    return ClusterError(f"{doing}: {code.name}: {details}")


class HeadClient:
    """The client's calls to the head."""

    def __init__(
        self, address: str, token: str, embedded: EmbeddedCluster | None
    ) -> None:
        self.address = address
        self.embedded = embedded
        self.metadata = token_metadata(token)
        self.channel = open_channel(address, TlsFiles.from_env())
        self.stub = tune_pb2_grpc.HeadStub(self.channel)
        # What put_object really sent, and what it handed over as files.
        self.bytes_uploaded = 0
        self.bytes_handed_over = 0

    @property
    def is_embedded(self) -> bool:
        return self.embedded is not None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            if self.embedded is not None:
                self.embedded.check_alive()
            try:
                grpc.channel_ready_future(self.channel).result(timeout=0.1)
                self.stub.GetClusterStatus(
                    tune_pb2.GetClusterStatusRequest(),
                    metadata=self.metadata,
                    timeout=5,
                )
                return
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"no head answered at {self.address} within "
                        f"{CONNECT_TIMEOUT_S:.0f} s; check the address and that "
                        "tune-head runs there."
                    ) from None
            except grpc.RpcError as exc:
                raise map_rpc_error(exc, f"connecting to {self.address}") from exc

    # ---- objects ----------------------------------------------------------

    def put_object(
        self, data: bytes | EncodedObject, object_id: str | None = None
    ) -> ObjectRef:
        """Upload an object unless the head already holds it (the same id).

        ``data`` is an object file from ``object_codec.encode`` or plain bytes.
        """
        encoded = data if isinstance(data, EncodedObject) else encode_bytes(data)
        try:
            found = self.stub.FindObjects(
                tune_pb2.FindObjectsRequest(object_ids=[encoded.object_id]),
                metadata=self.metadata,
            )
            present = encoded.object_id in found.present_ids
            if not present and not self._hand_over(encoded):
                with UploadProgress(encoded.size) as progress:
                    chunks = _chunks(encoded, progress)
                    self.stub.PutObject(chunks, metadata=self.metadata)
                self.bytes_uploaded += encoded.size
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, "uploading an object to the head") from exc
        return ObjectRef(encoded.object_id, encoded.size)

    def _hand_over(self, encoded: EncodedObject) -> bool:
        """Give the embedded head the object file itself, as it shares this
        machine: a rename instead of an upload. False when it cannot be moved
        there (another filesystem); the caller then uploads it."""
        if self.embedded is None or encoded.path is None:
            return False
        folder = self.embedded.object_handover_dir
        target = os.path.join(folder, os.path.basename(encoded.path))
        try:
            os.makedirs(folder, exist_ok=True)
            os.replace(encoded.path, target)
        except OSError as exc:
            log.debug("object file cannot be handed over (%s); uploading it", exc)
            return False
        encoded.path = target  # removed by discard() if the head refuses it
        self.stub.AdoptObject(
            tune_pb2.AdoptObjectRequest(
                object_id=encoded.object_id, file_name=os.path.basename(target)
            ),
            metadata=self.metadata,
        )
        encoded.path = None  # the head's now
        self.bytes_handed_over += encoded.size
        return True

    def missing_objects(self, object_ids: list[str]) -> list[str]:
        """Which of ``object_ids`` the head does not hold."""
        if not object_ids:
            return []
        try:
            found = self.stub.FindObjects(
                tune_pb2.FindObjectsRequest(object_ids=object_ids),
                metadata=self.metadata,
            )
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, "asking the head for objects") from exc
        return [i for i in object_ids if i not in set(found.present_ids)]

    # ---- experiments --------------------------------------------------------

    def submit(self, request: tune_pb2.SubmitExperimentRequest):
        try:
            return self.stub.SubmitExperiment(request, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, f"submitting experiment {request.name}") from exc

    def watch(self, experiment_id: str, after: int, epoch: str = "") -> Iterator:
        return self.stub.WatchExperiment(
            tune_pb2.WatchExperimentRequest(
                experiment_id=experiment_id, after_sequence=after, head_epoch=epoch
            ),
            metadata=self.metadata,
        )

    def stop_experiment(self, experiment: str) -> None:
        try:
            self.stub.StopExperiment(
                tune_pb2.StopExperimentRequest(experiment=experiment),
                metadata=self.metadata,
                timeout=10,
            )
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, f"stopping experiment {experiment}") from exc

    def drain_worker(self, worker_id: str) -> list[str]:
        try:
            reply = self.stub.DrainWorker(
                tune_pb2.DrainWorkerRequest(worker_id=worker_id),
                metadata=self.metadata,
                timeout=10,
            )
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, f"draining worker {worker_id}") from exc
        return list(reply.trial_ids)

    def status(self) -> tune_pb2.ClusterStatus:
        try:
            return self.stub.GetClusterStatus(
                tune_pb2.GetClusterStatusRequest(), metadata=self.metadata, timeout=10
            )
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, "asking the head for its status") from exc

    def close(self) -> None:
        self.channel.close()


def _chunks(
    encoded: EncodedObject, progress: UploadProgress
) -> Iterator[tune_pb2.ObjectChunk]:
    """The object as a stream of chunks; the first names it and its size."""
    first = True
    for data in encoded.chunks(UPLOAD_CHUNK):
        progress.advance(len(data))
        if first:
            first = False
            yield tune_pb2.ObjectChunk(
                object_id=encoded.object_id, total_size=encoded.size, data=data
            )
        else:
            yield tune_pb2.ObjectChunk(data=data)
