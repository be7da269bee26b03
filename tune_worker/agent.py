"""The worker agent: joins the head, runs the trials it is given, reports back.

One long-lived stream carries everything: the worker sends heartbeats,
batches of results, whole checkpoints and trial outcomes; the head sends
trial starts and stops and acknowledges result batches. Batches the head has
not acknowledged are sent again after a reconnect, and the head drops
iterations it already holds, so a result is logged once.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import shutil
import socket
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import cloudpickle
import grpc

from proto.generated import tune_pb2, tune_pb2_grpc
from tune_client import storage
from tune_client.auth import TlsFiles, open_channel, token_metadata
from tune_client.file_transfer import file_chunks, write_chunks
from tune_client.session import TrialStart
from tune_client.trial_output import OutputBudget, OutputLines
from tune_worker import DEFAULT_PRELOAD
from tune_worker.gpus import GpuIds
from tune_worker.object_cache import ObjectCache, default_directory
from tune_worker.object_source import HeadObjectSource
from tune_worker.trial_processes import Collected, TrialProcesses, TrialReport
from tune_worker.uploader import (
    CheckpointUpload,
    StaleRunError,
    StorageTarget,
    TrialEnd,
    TrialFilesUpload,
    Uploader,
)
from tune_worker.working_dirs import WorkingDirs

log = logging.getLogger(__name__)

_OUTCOME_TO_PROTO = {
    "finished": tune_pb2.FINISHED,
    "stopped": tune_pb2.STOPPED,
    "errored": tune_pb2.ERRORED,
    "interrupted": tune_pb2.INTERRUPTED,
}
MAX_BATCH = 2000
COLLECT_TIMEOUT_S = 0.02
# Results that arrive within this long of each other travel in one batch:
# each batch costs the head a flush and a round of scheduling decisions.
BATCH_LINGER_S = 0.005
BATCH_POLL_S = 0.001
# Trial output goes to the head in messages of about this size at most.
OUTPUT_BATCH_BYTES = 1 << 20


@dataclass
class WorkerConfig:
    head: str
    token: str
    resources: dict[str, float]
    work_dir: str
    worker_id: str
    node_ip: str
    tls: TlsFiles = TlsFiles()
    object_cache_dir: str = ""  # empty: /dev/shm, else <work_dir>/objects
    object_cache_memory: int | None = None
    # The embedded cluster's head binds a port of the OS's choosing and writes
    # it here; ``head`` is then read from this file once it appears.
    head_port_file: str = ""
    # Modules the trial template imports once, so trials need not.
    preload: tuple[str, ...] = DEFAULT_PRELOAD
    # Bytes a second of each trial's output sent on to the client; 0: all.
    output_rate: int = OutputBudget.DEFAULT_BYTES_PER_S


class WorkerAgent:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.metadata = token_metadata(config.token)
        self.processes = TrialProcesses(config.preload)
        # Trials' output, printed as whole lines and budgeted per trial.
        self.output_lines = OutputLines()
        self.output_budgets: dict[str, OutputBudget] = {}
        self.uploader = Uploader(self._send, self._stream_upload)
        self.gpus = GpuIds(config.resources.get("gpu", 0.0))
        self.working_dirs = WorkingDirs(os.path.join(config.work_dir, "working_dirs"))
        fallback = os.path.join(config.work_dir, "objects")
        self.object_source = HeadObjectSource(config.token, self.metadata)
        self.objects = ObjectCache(
            config.object_cache_dir or default_directory(fallback),
            self.object_source.fetch,
            config.object_cache_memory,
            fallback_dir=fallback,
        )
        self._stopping = threading.Event()
        self._stream_queue: queue.SimpleQueue | None = None
        self._unacked: OrderedDict[int, tune_pb2.WorkerMessage] = OrderedDict()
        # Trials the head placed here whose end it has not acknowledged yet:
        # starting, running, uploading, or ended with the news still in flight.
        self._held_trials: set[str] = set()
        self._next_sequence = 1
        self._send_lock = threading.Lock()
        self._stub: tune_pb2_grpc.HeadStub | None = None

    # ---- life cycle -------------------------------------------------------

    def run(self) -> None:
        """Serve until ``stop``; reconnect with backoff whenever the head goes away."""
        self.processes.warm_up()
        threading.Thread(target=self._pump, name="result-pump", daemon=True).start()
        if self.config.head_port_file:
            self._read_head_port()
        delay = 0.05
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self._serve_one_connection()
            except grpc.RpcError as exc:
                if self._stopping.is_set():
                    break
                code = exc.code() if hasattr(exc, "code") else None
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    log.error("the head rejected our token: %s", exc.details())
                log.info(
                    "connection to head %s lost (%s); retrying in %.1f s",
                    self.config.head,
                    code,
                    delay,
                )
            if time.monotonic() - started > 10:
                delay = 0.05
            self._stopping.wait(delay * (1 + random.random() * 0.2))
            delay = min(delay * 2, 5.0)

    def stop(self, reason: str) -> None:
        """Stop every trial, wait for uploads, then leave.

        The worker leaves even when a step of the clean-up fails: a daemon
        that ignores SIGTERM is worse than a cache left for the next start.
        """
        if self._stopping.is_set():
            return
        log.info("tune-worker stopping: %s", reason)
        try:
            self.processes.stop_all(
                f"the worker is shutting down ({reason})", interrupted=True
            )
            deadline = time.monotonic() + 10
            while self.processes.running and time.monotonic() < deadline:
                time.sleep(0.05)
            self.uploader.drain(timeout=30)
            self.objects.close()
        except Exception:
            log.exception("clean-up on the way out failed; leaving anyway")
        finally:
            self._stopping.set()
            if self._stream_queue is not None:
                self._stream_queue.put(None)

    def _read_head_port(self) -> None:
        """Wait for the head to write its port, then take it as the address."""
        path = self.config.head_port_file
        while not os.path.exists(path):
            if self._stopping.wait(0.005):
                return
        with open(path) as f:
            self.config.head = f"127.0.0.1:{f.read().strip()}"

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    # ---- the connection ---------------------------------------------------

    def _serve_one_connection(self) -> None:
        channel = open_channel(self.config.head, self.config.tls)
        try:
            self._stub = tune_pb2_grpc.HeadStub(channel)
            reply = self._register()
            self.object_source.connect(channel, self.config.head, reply.object_port)
            same_machine = reply.head_hostname == socket.gethostname()
            self.objects.use_head_directory(reply.object_dir if same_machine else "")
            for trial_id in reply.stale_trial_ids:
                self.processes.stop(trial_id, "the head no longer runs this trial")
            self._stream_queue = stream_queue = queue.SimpleQueue()
            stream_queue.put(
                tune_pb2.WorkerMessage(
                    hello=tune_pb2.WorkerHello(worker_id=self.config.worker_id)
                )
            )
            self._resend_pending(stream_queue)
            heartbeat = threading.Thread(
                target=self._heartbeat,
                args=(stream_queue, reply.heartbeat_interval_s or 1.0),
                daemon=True,
            )
            heartbeat.start()
            commands = self._stub.ConnectWorker(
                _drain_queue(stream_queue), metadata=self.metadata
            )
            for command in commands:
                self._handle(command)
        finally:
            if self._stream_queue is not None:
                self._stream_queue.put(None)
            self._stream_queue = None
            channel.close()

    def _register(self) -> tune_pb2.RegisterWorkerReply:
        reply = self._stub.RegisterWorker(
            tune_pb2.RegisterWorkerRequest(
                worker_id=self.config.worker_id,
                hostname=socket.gethostname(),
                node_ip=self.config.node_ip,
                resources=self.config.resources,
                running_trial_ids=self._trials_held(),
            ),
            metadata=self.metadata,
            timeout=10,
        )
        log.info("registered with head %s as %s", self.config.head, reply.worker_id)
        return reply

    def _trials_held(self) -> list[str]:
        """What the head must not count as lost when we register again."""
        with self._send_lock:
            return sorted(self._held_trials | set(self.processes.running))

    def _resend_pending(self, stream_queue: queue.SimpleQueue) -> None:
        with self._send_lock:
            for message in self._unacked.values():
                stream_queue.put(message)

    def _heartbeat(self, stream_queue: queue.SimpleQueue, interval: float) -> None:
        while self._stream_queue is stream_queue and not self._stopping.wait(interval):
            stream_queue.put(
                tune_pb2.WorkerMessage(
                    heartbeat=tune_pb2.Heartbeat(unix_time=time.time())
                )
            )

    def _send_unnumbered(self, message: tune_pb2.WorkerMessage) -> None:
        """Send now if connected, else drop: for what need not survive a
        reconnect."""
        stream_queue = self._stream_queue
        if stream_queue is not None:
            stream_queue.put(message)

    def _send(self, message: tune_pb2.WorkerMessage) -> None:
        """Number the message and send it now if connected; it is kept, and sent
        again after a reconnect, until the head acknowledges it."""
        with self._send_lock:
            message.sequence = self._next_sequence
            self._next_sequence += 1
            self._unacked[message.sequence] = message
            stream_queue = self._stream_queue
            if stream_queue is None:
                return
            stream_queue.put(message)

    def _stream_upload(
        self, trial_id: str, folder: str, local_dir: str, run_id: str
    ) -> str:
        """Send a folder to the head, for storage only it sees; its stored path."""
        stub = self._stub
        if stub is None:
            raise ConnectionError("not connected to the head")
        try:
            reply = stub.UploadTrialFiles(
                file_chunks(trial_id, folder, local_dir, run_id),
                metadata=self.metadata,
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise StaleRunError(exc.details()) from exc
            raise
        return reply.path

    def _download_checkpoint(self, command: tune_pb2.StartTrial) -> str:
        """Fetch the checkpoint to resume from out of the head's storage."""
        name = command.restore_checkpoint_path.rstrip("/").rsplit("/", 1)[-1]
        local = os.path.join(self.config.work_dir, "restore", command.trial_id, name)
        shutil.rmtree(local, ignore_errors=True)
        chunks = self._stub.DownloadCheckpoint(
            tune_pb2.DownloadCheckpointRequest(path=command.restore_checkpoint_path),
            metadata=self.metadata,
        )
        write_chunks(chunks, local)
        return local

    # ---- commands from the head -------------------------------------------

    def _handle(self, command: tune_pb2.HeadCommand) -> None:
        kind = command.WhichOneof("kind")
        if kind == "results_ack":
            with self._send_lock:
                while self._unacked and next(iter(self._unacked)) <= (
                    command.results_ack.sequence
                ):
                    _, message = self._unacked.popitem(last=False)
                    if message.WhichOneof("kind") == "trial_ended":
                        self._held_trials.discard(message.trial_ended.trial_id)
        elif kind == "start_trial":
            with self._send_lock:
                self._held_trials.add(command.start_trial.trial_id)
            threading.Thread(
                target=self._start_trial, args=(command.start_trial,), daemon=True
            ).start()
        elif kind == "drain":
            log.info("draining: %s", command.drain.reason)
            threading.Thread(
                target=self.stop, args=(command.drain.reason,), daemon=True
            ).start()
        elif kind == "stop_trial":
            log.info(
                "stopping trial %s: %s",
                command.stop_trial.trial_id,
                command.stop_trial.reason,
            )
            self.processes.stop(command.stop_trial.trial_id, command.stop_trial.reason)

    def _start_trial(self, command: tune_pb2.StartTrial) -> None:
        try:
            working_dir = command.working_dir_object_id
            paths = self.objects.acquire(
                command.trial_id,
                [command.trainable_object_id, *command.object_ids]
                + ([working_dir] if working_dir else []),
            )
            trainable_path = paths[command.trainable_object_id]
            if self._stopping.is_set() or self.processes.shutting_down:
                self.objects.release(command.trial_id)
                self.uploader.put(
                    TrialEnd(
                        command.trial_id,
                        tune_pb2.INTERRUPTED,
                        "the worker is shutting down",
                    )
                )
                return
            start = self._trial_start(command, trainable_path)
            start.object_paths = paths
            start.gpu_ids = self.gpus.allocate(
                command.trial_id, command.resources.get("gpu", 0.0)
            )
            if working_dir:
                start.working_dir = self.working_dirs.unpack(
                    working_dir, paths[working_dir]
                )
            self.processes.start(start)
        except Exception as exc:
            log.exception("trial %s could not start", command.trial_id)
            self.objects.release(command.trial_id)
            self.gpus.release(command.trial_id)
            self.uploader.put(
                TrialEnd(
                    command.trial_id,
                    tune_pb2.ERRORED,
                    f"the worker could not start the trial: {exc!r}",
                )
            )

    def _trial_start(self, command: tune_pb2.StartTrial, trainable_path: str):
        stream = command.storage_mode == tune_pb2.STREAM_TO_HEAD
        filesystem = (
            cloudpickle.loads(command.storage_filesystem_pickle)
            if command.storage_filesystem_pickle
            else None
        )
        restore_path = command.restore_checkpoint_path
        checkpoint_filesystem = filesystem
        if stream and restore_path:
            restore_path, checkpoint_filesystem = (
                self._download_checkpoint(command),
                None,
            )
        output_files = (
            (command.stdout_file, command.stderr_file) if command.stdout_file else None
        )
        trial_dir = command.trial_path
        if stream or filesystem is not None or storage.is_uri(trial_dir):
            trial_dir = os.path.join(
                self.config.work_dir,
                "trials",
                command.experiment_name,
                command.trial_id,
            )
        return TrialStart(
            experiment_id=command.experiment_id,
            experiment_name=command.experiment_name,
            trial_id=command.trial_id,
            trial_name=command.trial_name,
            trial_dir=trial_dir,
            trial_path=command.trial_path,
            trainable_path=trainable_path,
            objects_dir=self.objects.directory,
            staging_dir=os.path.join(self.config.work_dir, "staging", command.trial_id),
            config=cloudpickle.loads(command.config_pickle),
            resources=dict(command.resources),
            restore_checkpoint_path=restore_path,
            restore_iteration=command.restore_iteration,
            restore_time_total_s=command.restore_time_total_s,
            next_checkpoint_index=command.next_checkpoint_index,
            node_ip=self.config.node_ip,
            stream_to_head=stream,
            run_id=command.run_id,
            stop_criteria=json.loads(command.stop_criteria_json or b"{}"),
            output_files=output_files,
            forward_output=output_files is None,
            storage_filesystem=filesystem,
            checkpoint_filesystem=checkpoint_filesystem,
        )

    # ---- results from trial processes ---------------------------------------

    def _pump(self) -> None:
        """Forward trial messages to the head: results first, then uploads, ends."""
        while not self._stopping.is_set():
            collected = self._collect_batch()
            results = collected.results
            for start in range(0, len(results), MAX_BATCH):
                self._send_results(results[start : start + MAX_BATCH])
            for report in results:
                if report.staged_checkpoint:
                    self.uploader.put(
                        CheckpointUpload(
                            report.trial.trial_id,
                            report.checkpoint_dir_name,
                            report.staged_checkpoint,
                            _storage_target(report.trial.start),
                            report.metrics_json,
                        )
                    )
            if collected.output:
                self._pass_on_output(collected.output)
            for trial, outcome, error in collected.ended:
                self._on_trial_ended(trial, outcome, error)

    def _collect_batch(self) -> Collected:
        """What trials said, waiting up to ``BATCH_LINGER_S`` after the first
        result for more, unless a trial ended or the batch is full."""
        collected = self.processes.collect(COLLECT_TIMEOUT_S)
        if not collected.results:
            return collected
        deadline = time.monotonic() + BATCH_LINGER_S
        while not collected.ended and len(collected.results) < MAX_BATCH:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # Sleep rather than wake for each message: a trial reporting
            # thousands of times a second otherwise costs a wake-up a result.
            time.sleep(min(left, BATCH_POLL_S))
            collected.extend(self.processes.collect(0))
        return collected

    def _pass_on_output(self, output: list[tuple[Any, int, bytes]]) -> None:
        """Print trials' output here, for operators, and send it on to the
        head for the client, as much of it as each trial's budget allows."""
        now = time.monotonic()
        items, size = [], 0
        for trial, stream, data in output:
            name = trial.start.trial_name
            self._print_output(
                self.output_lines.take(trial.trial_id, name, stream, data)
            )
            budget = self.output_budgets.get(trial.trial_id)
            if budget is None:
                budget = self.output_budgets[trial.trial_id] = OutputBudget(
                    now, self.config.output_rate
                )
            passed = budget.admit(data, now)
            if passed is None:
                continue
            items.append(
                tune_pb2.TrialOutput(
                    trial_id=trial.trial_id, stream=stream, data=passed
                )
            )
            size += len(passed)
            if size >= OUTPUT_BATCH_BYTES:
                self._send_output(items)
                items, size = [], 0
        if items:
            self._send_output(items)

    def _send_output(self, items: list[tune_pb2.TrialOutput]) -> None:
        batch = tune_pb2.TrialOutputBatch(items=items)
        self._send_unnumbered(tune_pb2.WorkerMessage(output=batch))

    @staticmethod
    def _print_output(text: str) -> None:
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()

    def _on_trial_ended(self, trial, outcome: str, error: str) -> None:
        log.info("trial %s ended: %s", trial.start.trial_name, outcome)
        for _, text in self.output_lines.finish(trial.trial_id, trial.start.trial_name):
            self._print_output(text)
        self.output_budgets.pop(trial.trial_id, None)
        self.objects.release(trial.trial_id)
        self.gpus.release(trial.trial_id)
        start = trial.start
        if start.trial_dir != start.trial_path:
            self.uploader.put(
                TrialFilesUpload(
                    trial.trial_id, start.trial_dir, _storage_target(start)
                )
            )
        self.uploader.put(TrialEnd(trial.trial_id, _OUTCOME_TO_PROTO[outcome], error))

    def _send_results(self, reports: list[TrialReport]) -> None:
        batch = tune_pb2.ResultBatch(
            results=[
                tune_pb2.TrialResult(
                    trial_id=report.trial.trial_id,
                    metrics_json=report.metrics_json,
                    training_iteration=report.training_iteration,
                    progress_row=report.progress_row,
                    progress_columns=report.progress_columns,
                )
                for report in reports
            ],
        )
        self._send(tune_pb2.WorkerMessage(results=batch))


def _storage_target(start: TrialStart) -> StorageTarget:
    return StorageTarget(
        start.trial_path, start.stream_to_head, start.storage_filesystem, start.run_id
    )


def _drain_queue(stream_queue: queue.SimpleQueue):
    while True:
        message = stream_queue.get()
        if message is None:
            return
        yield message
