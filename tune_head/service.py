"""The head's gRPC servicer: it unpacks requests, calls ``Head`` and maps errors.

Domain errors become status codes here (an unknown experiment is NOT_FOUND, a
name clash ALREADY_EXISTS, a damaged folder FAILED_PRECONDITION); the client
maps them back to its own exceptions.
"""

from __future__ import annotations

import logging
import os
import queue
import threading

import grpc

from proto.generated import tune_pb2, tune_pb2_grpc
from proto.object_stream import object_chunks
from tune_head import experiment_storage as es
from tune_head import file_transfer
from tune_head.head import ExperimentExistsError, Head, UnknownExperimentError
from tune_head.object_store import ObjectHashMismatch

log = logging.getLogger(__name__)


class HeadService(tune_pb2_grpc.HeadServicer):
    def __init__(self, head: Head) -> None:
        self.head = head

    def RegisterWorker(self, request, context):
        return self.head.register_worker(request)

    def ConnectWorker(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("kind") != "hello":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "send hello first")
        worker_id = first.hello.worker_id
        try:
            handle, epoch = self.head.open_worker_stream(worker_id)
        except KeyError:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"worker {worker_id} is not registered; register again",
            )
        outbox = handle.outbox
        threading.Thread(
            target=self._read_worker_messages,
            args=(worker_id, epoch, request_iterator, outbox),
            name=f"worker-reader-{worker_id}",
            daemon=True,
        ).start()
        while (
            context.is_active()
            and handle.stream_epoch == epoch
            and not self.head.is_closed
        ):
            try:
                command = outbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if command is None:  # the worker closed its side
                break
            yield command

    def _read_worker_messages(
        self, worker_id, epoch, request_iterator, outbox: queue.SimpleQueue
    ) -> None:
        try:
            for message in request_iterator:
                self._handle_worker_message(worker_id, message)
        except grpc.RpcError:
            pass
        finally:
            self.head.close_worker_stream(worker_id, epoch)
            outbox.put(None)

    def _handle_worker_message(self, worker_id: str, message) -> None:
        """One bad message is logged and skipped; the stream goes on."""
        try:
            self.head.on_worker_message(worker_id, message)
        except Exception:
            log.exception(
                "the head could not handle a %s message from worker %s",
                message.WhichOneof("kind"),
                worker_id,
            )

    def FindObjects(self, request, context):
        present = [i for i in request.object_ids if self.head.objects.contains(i)]
        self.head.objects.announce(present)  # kept until the submit that uses them
        return tune_pb2.FindObjectsReply(present_ids=present)

    def PutObject(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or not first.object_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first chunk needs an id")

        def chunks():
            yield first.data
            for chunk in request_iterator:
                yield chunk.data

        try:
            size = self.head.objects.put_chunks(first.object_id, chunks())
        except (ObjectHashMismatch, KeyError) as exc:
            context.abort(grpc.StatusCode.DATA_LOSS, str(exc))
        return tune_pb2.PutObjectReply(object_id=first.object_id, size=size)

    def AdoptObject(self, request, context):
        try:
            size = self.head.objects.adopt(request.object_id, request.file_name)
        except (KeyError, ValueError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except FileNotFoundError:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no file {request.file_name!r} handed over for object "
                f"{request.object_id[:12]}",
            )
        return tune_pb2.PutObjectReply(object_id=request.object_id, size=size)

    def GetObject(self, request, context):
        objects = self.head.objects
        try:
            size = objects.size_of(request.object_id)
        except (FileNotFoundError, KeyError):
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"no object {request.object_id[:12]}"
            )
        yield from object_chunks(
            request.object_id, size, objects.read_chunks(request.object_id)
        )

    def SubmitExperiment(self, request, context):
        try:
            return self.head.submit(request)
        except ExperimentExistsError as exc:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except es.DamagedExperimentError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except FileNotFoundError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, f"object missing: {exc}")

    def WatchExperiment(self, request, context):
        try:
            batches = self.head.watch(
                request.experiment_id, request.after_sequence, request.head_epoch
            )
            for batch in batches:
                if not context.is_active():
                    return
                yield tune_pb2.ExperimentEvents(
                    events=batch, head_epoch=self.head.epoch
                )
        except UnknownExperimentError:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"no experiment {request.experiment_id}"
            )

    def StopExperiment(self, request, context):
        try:
            experiment_id = self.head.stop_experiment(
                request.experiment, "stopped by request"
            )
        except UnknownExperimentError:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"no experiment named {request.experiment}"
            )
        return tune_pb2.StopExperimentReply(experiment_id=experiment_id)

    def GetClusterStatus(self, request, context):
        return self.head.cluster_status()

    def DrainWorker(self, request, context):
        try:
            trial_ids = self.head.drain_worker(request.worker_id)
        except KeyError:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no worker {request.worker_id}; `tune status` lists the workers",
            )
        return tune_pb2.DrainWorkerReply(trial_ids=trial_ids)

    def UploadTrialFiles(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no files sent")
        try:
            trial_folder, stored_path = self.head.trial_folder(
                first.trial_id, first.run_id
            )
        except KeyError:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no trial {first.trial_id}")
        except PermissionError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        try:
            file_transfer.receive(request_iterator, trial_folder, first)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        path = f"{stored_path}/{first.folder}" if first.folder else stored_path
        return tune_pb2.UploadTrialFilesReply(path=path)

    def DownloadCheckpoint(self, request, context):
        if not self.head.holds_path(request.path) or not os.path.isdir(request.path):
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"{request.path} is not a checkpoint of an experiment on this head",
            )
        yield from file_transfer.send(request.path)
