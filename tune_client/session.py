"""The in-trial session: ``report``, ``get_checkpoint`` and ``get_context``.

Each trial runs in its own process, forked by the worker from a warm template.
The process talks to its worker over one local connection: results and staged
checkpoints go up, a stop request (or the connection closing because the worker
died) comes down. ``report`` stages a checkpoint on the worker's disk and
returns; the worker uploads it.
"""

from __future__ import annotations

import os
import pickle
import select
import shutil
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from tune_client.checkpoint import Checkpoint
from tune_client.errors import TuneError
from tune_client.result_lines import ResultLines
from tune_client.stopper import stop_criteria_reason

_session: _TrialSession | None = None


@dataclass
class TrialStart:
    """Everything a trial process needs, sent by the worker when it starts one."""

    experiment_id: str
    experiment_name: str
    trial_id: str
    trial_name: str
    trial_dir: str
    trial_path: str
    trainable_path: str
    objects_dir: str
    staging_dir: str
    config: dict
    resources: dict = field(default_factory=dict)
    restore_checkpoint_path: str = ""
    restore_iteration: int = 0
    restore_time_total_s: float = 0.0
    next_checkpoint_index: int = 0
    node_ip: str = "127.0.0.1"
    # How the worker stores this trial's files (see tune_worker.uploader).
    stream_to_head: bool = False
    run_id: str = ""
    storage_filesystem: Any = None
    # The filesystem of restore_checkpoint_path; None for a local folder.
    checkpoint_filesystem: Any = None
    # RunConfig(stop={metric: bound}): the trial ends after a result reaches one.
    stop_criteria: dict = field(default_factory=dict)
    # RunConfig(log_to_file=...): (stdout, stderr) file names in trial_dir.
    output_files: tuple[str, str] | None = None
    # Without output_files: send stdout and stderr to the worker, to be
    # passed on to the client, instead of writing them to its own output.
    forward_output: bool = False
    # CUDA devices of this trial; None when the worker has no GPUs.
    gpu_ids: list[int] | None = None
    # The unpacked working_dir of tune.init(working_dir=...), put on sys.path.
    working_dir: str = ""
    # Where each object the trial uses is on this machine (the worker's cache,
    # or the head's folder when the head shares the machine).
    object_paths: dict[str, str] = field(default_factory=dict)


class TrialContext:
    """What a trial may ask about itself (Ray Tune's ``TuneContext``)."""

    def __init__(self, start: TrialStart) -> None:
        self._start = start

    def get_trial_id(self) -> str:
        return self._start.trial_id

    def get_trial_name(self) -> str:
        return self._start.trial_name

    def get_trial_dir(self) -> str:
        return self._start.trial_dir

    def get_experiment_name(self) -> str:
        return self._start.experiment_name

    def get_trial_resources(self) -> dict:
        return dict(self._start.resources)

    def get_world_rank(self) -> int:
        return 0

    def get_local_rank(self) -> int:
        return 0

    def get_world_size(self) -> int:
        return 1


def encode_message(message: tuple) -> bytes:
    """A message to the worker, as ``Connection.recv`` reads it.

    Plain pickle: ``Connection.send`` builds a multiprocessing pickler with
    its own reducer table for every message, which costs more than the
    pickling of a result itself.
    """
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


class _TrialSession:
    """Counters and the connection to the worker for one trial process."""

    def __init__(self, start: TrialStart, conn: Any) -> None:
        self.start = start
        self.conn = conn
        self.context = TrialContext(start)
        self.iteration = start.restore_iteration
        self.iterations_since_restore = 0
        self.time_total_s = start.restore_time_total_s
        self.checkpoint_index = start.next_checkpoint_index
        self.restore_time = time.time()
        self.last_report_time = self.restore_time
        self.fixed_fields = {
            "trial_id": start.trial_id,
            "experiment_id": start.experiment_id,
            "hostname": socket.gethostname(),
            "node_ip": start.node_ip,
            "pid": os.getpid(),
        }
        self.send_lock = threading.Lock()
        # The result.json and progress.csv lines of this process's results.
        self.lines = ResultLines()
        self._date_second = -1
        self._date_text = ""

    def report(self, metrics: dict, checkpoint: Checkpoint | None) -> None:
        if not isinstance(metrics, dict):
            raise TypeError(
                f"tune.report() takes a dict of metrics, not {type(metrics).__name__}"
            )
        now = time.time()
        self.iteration += 1
        self.iterations_since_restore += 1
        this_iter = now - self.last_report_time
        self.last_report_time = now
        self.time_total_s += this_iter
        staged_dir = dir_name = None
        if checkpoint is not None:
            dir_name = f"checkpoint_{self.checkpoint_index:06d}"
            self.checkpoint_index += 1
            staged_dir = self._stage(checkpoint, dir_name)
        result = dict(metrics)
        result.update(
            training_iteration=self.iteration,
            time_this_iter_s=this_iter,
            time_total_s=self.time_total_s,
            timestamp=int(now),
            date=self._date(int(now)),
            done=False,
            time_since_restore=now - self.restore_time,
            iterations_since_restore=self.iterations_since_restore,
            checkpoint_dir_name=dir_name,
        )
        result.update(self.fixed_fields)
        stop = self._meets_stop_criteria(result)
        if stop:
            result["done"] = True
        with self.send_lock:  # one line buffer; lines go out in order
            result_json, row, announced_columns = self.lines.encode(result)
            message = (
                "result",
                result_json,
                dir_name,
                staged_dir,
                self.iteration,
                row,
                announced_columns,
            )
            self.conn.send_bytes(encode_message(message))
        if stop:
            raise _StopRequested(stop)

    def _date(self, second: int) -> str:
        """The ``date`` field, formatted once a second however often we report."""
        if second != self._date_second:
            self._date_second = second
            self._date_text = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(second))
        return self._date_text

    def _meets_stop_criteria(self, result: dict) -> str:
        """The bound of RunConfig(stop={...}) this result reaches, if any.

        Nested metrics are named "a/b". A key the result lacks is skipped here:
        the head and the client tell the user which keys results do have.
        """
        if not self.start.stop_criteria:
            return ""
        return stop_criteria_reason(self.start.stop_criteria, result)[0]

    def _stage(self, checkpoint: Checkpoint, dir_name: str) -> str:
        """Copy the checkpoint to the worker's disk so the caller may delete it."""
        target = os.path.join(self.start.staging_dir, dir_name)
        if os.path.exists(target):
            shutil.rmtree(target)
        if checkpoint.is_local:
            shutil.copytree(checkpoint.path, target)
        else:
            checkpoint.to_directory(target)
        return target

    def get_checkpoint(self) -> Checkpoint | None:
        path = self.start.restore_checkpoint_path
        if not path:
            return None
        return Checkpoint(path, self.start.checkpoint_filesystem)


class _StopRequested(BaseException):
    """Ends the trainable after a result meets RunConfig(stop=...).

    A BaseException, so a user's ``except Exception`` does not swallow it.
    """


def _require_session(what: str) -> _TrialSession:
    if _session is None:
        raise TuneError(
            f"tune.{what}() was called outside a trial; call it from inside the "
            "training function that Tuner runs."
        )
    return _session


def report(metrics: dict, *, checkpoint: Checkpoint | None = None) -> None:
    """Report one iteration's metrics, and optionally a checkpoint folder.

    The checkpoint folder is copied before this returns, so it may be a
    temporary folder that is deleted right after.
    """
    _require_session("report").report(metrics, checkpoint)


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint this trial resumes from, or None on a fresh start."""
    return _require_session("get_checkpoint").get_checkpoint()


def get_context() -> TrialContext:
    """Facts about the running trial: id, name, folder, experiment, resources."""
    return _require_session("get_context").context


def _watch_for_stop(conn: Any) -> None:
    """Exit when the worker asks us to stop or goes away."""
    try:
        while True:
            message = conn.recv()
            if message[0] == "stop":
                break
    except (EOFError, OSError):
        pass
    os._exit(1)


class _ObjectLoader:
    """Maps each object the trial uses, once per trial process.

    Objects are memory-mapped from the machine's cache, so a DataFrame of
    numbers or a numpy array shares its pages with every other trial on the
    machine instead of being copied into this process.
    """

    def __init__(self, start: TrialStart) -> None:
        self.start = start
        self.loaded: dict[str, Any] = {}

    def __call__(self, ref: Any) -> Any:
        if ref.object_id not in self.loaded:
            self.loaded[ref.object_id] = _load_object(self.start, ref)
        return self.loaded[ref.object_id]


def _load_object(start: TrialStart, ref: Any) -> Any:
    from tune_client import object_codec

    path = start.object_paths.get(ref.object_id) or os.path.join(
        start.objects_dir, ref.object_id
    )
    return object_codec.load_file(path)


def run_trial_process(conn: Any, start: TrialStart) -> None:
    """Entry point of a trial process: run the trainable and report how it ended."""
    global _session
    import cloudpickle

    os.makedirs(start.trial_dir, exist_ok=True)
    os.makedirs(start.staging_dir, exist_ok=True)
    os.chdir(start.trial_dir)
    if start.output_files:
        _send_output_to_files(*start.output_files)
    if start.gpu_ids is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, start.gpu_ids))
    if start.working_dir:
        sys.path.insert(0, start.working_dir)
    _session = _TrialSession(start, conn)
    forwarder = _OutputForwarder(_session) if start.forward_output else None
    threading.Thread(target=_watch_for_stop, args=(conn,), daemon=True).start()
    try:
        with open(start.trainable_path, "rb") as f:
            trainable = cloudpickle.load(f)
        from tune_client.large_inputs import resolve_refs

        loader = _ObjectLoader(start)
        trainable(resolve_refs(start.config, loader), loader)
        outcome = ("finished", "")
    except _StopRequested:
        outcome = ("finished", "")
    except BaseException:  # noqa: BLE001 - the trial's failure is its result
        outcome = ("error", traceback.format_exc())
    _flush_output()  # os._exit below drops what Python still buffers
    if forwarder is not None:
        forwarder.close()
    with _session.send_lock:
        conn.send_bytes(encode_message(outcome))
    conn.close()
    os._exit(0)


def _send_output_to_files(stdout_name: str, stderr_name: str) -> None:
    """Point file descriptors 1 and 2 at files in the trial folder (the
    working directory), so output from C extensions and subprocesses lands
    there too. Files are appended to: a retried trial adds to its first run's
    output. Lines are written as they are printed, so the files can be
    followed while the trial runs."""
    _flush_output()
    opened: dict[str, int] = {}
    for fd, name in ((1, stdout_name), (2, stderr_name)):
        path = os.path.abspath(name)
        if path not in opened:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            opened[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(opened[path], fd)
    for descriptor in opened.values():
        os.close(descriptor)
    _write_output_by_lines()


class _OutputForwarder:
    """Sends what the trial writes to file descriptors 1 and 2 to the worker.

    The descriptors become pipes read by a thread here, so output from C
    extensions and child processes goes along too, and a trial that writes
    nothing costs nothing.
    """

    READ_SIZE = 1 << 16

    def __init__(self, session: _TrialSession) -> None:
        self.session = session
        _flush_output()
        self.streams: dict[int, int] = {}  # read end -> 1 or 2
        for fd in (1, 2):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            self.streams[read_end] = fd
        _write_output_by_lines()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        open_ends = set(self.streams)
        while open_ends:
            ready, _, _ = select.select(list(open_ends), [], [])
            for read_end in ready:
                data = os.read(read_end, self.READ_SIZE)
                if not data:
                    open_ends.discard(read_end)
                    os.close(read_end)
                    continue
                message = encode_message(("output", self.streams[read_end], data))
                try:
                    with self.session.send_lock:
                        self.session.conn.send_bytes(message)
                except (OSError, ValueError):  # the worker is gone, or we ended
                    return

    def close(self, timeout: float = 1.0) -> None:
        """Send what is left: the pipes close when 1 and 2 point elsewhere
        (unless a child process the trial left running still holds them)."""
        _flush_output()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
        self.thread.join(timeout)


def _write_output_by_lines() -> None:
    """Let every printed line go out at once, not when a buffer fills."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken by the trainable
            pass
