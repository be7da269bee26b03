"""Trial processes: started from a warm template, watched over one connection each.

Trial processes are forked by a multiprocessing forkserver that has already
imported the heavy modules (by default numpy and pandas, then cloudpickle and
this package), so a trial starts in milliseconds. Each process talks to the
worker over its own connection; ``collect`` drains all of them at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import pickle
import signal
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tune_client.session import TrialStart, run_trial_process  # noqa: F401
from tune_worker import DEFAULT_PRELOAD

log = logging.getLogger(__name__)

# Every trial runs these; the template always loads them.
TRIAL_MODULES = ["tune_client.session", "cloudpickle"]
# Loaded last: freezes what the modules before it made.
TEMPLATE_READY_MODULE = "tune_worker.template_ready"
STOP_GRACE_S = 5.0
PRELOAD_FLAG = "--preload"
PRELOAD_ENV = "TUNE_WORKER_PRELOAD"


def parse_preload(value: str) -> tuple[str, ...]:
    """Module names from a comma-separated ``--preload`` value."""
    return tuple(name.strip() for name in value.split(",") if name.strip())


def preload_from_command_line(argv: list[str], environ) -> tuple[str, ...]:
    """The ``--preload`` modules, read before the flag parser is even imported.

    The template starts first thing, so that its imports overlap the worker's
    own; the flag is the same one ``tune-worker --help`` lists.
    """
    for index, arg in enumerate(argv):
        if arg == PRELOAD_FLAG and index + 1 < len(argv):
            return parse_preload(argv[index + 1])
        if arg.startswith(PRELOAD_FLAG + "="):
            return parse_preload(arg.split("=", 1)[1])
    if environ.get(PRELOAD_ENV):
        return parse_preload(environ[PRELOAD_ENV])
    return DEFAULT_PRELOAD


def _context(preload: tuple[str, ...] = DEFAULT_PRELOAD):
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*TRIAL_MODULES, *preload, TEMPLATE_READY_MODULE])
    return context


def warm_up_template(preload: tuple[str, ...] = DEFAULT_PRELOAD) -> None:
    """Start the template process in the background; trials fork from it."""
    _context(preload)
    threading.Thread(
        target=multiprocessing.forkserver.ensure_running,
        name="forkserver-warmup",
        daemon=True,
    ).start()


@dataclass
class RunningTrial:
    trial_id: str
    start: TrialStart
    process: Any
    conn: Any
    outcome: tuple[str, str] | None = None
    stop_reason: str = ""
    stop_requested_at: float = 0.0
    interrupted: bool = False
    ended: bool = False
    reader: MessageReader = field(init=False)

    def __post_init__(self) -> None:
        self.reader = MessageReader(self.conn)


class MessageReader:
    """Every message a trial process has sent so far, with one ``read``.

    The trial writes ``Connection``-framed pickles (a 4-byte length, or -1
    and an 8-byte length, then the bytes). ``Connection.poll`` and ``recv``
    cost three system calls a message, most of a worker's work when trials
    report thousands of results a second; this reads whatever has arrived
    at once and splits it.
    """

    READ_SIZE = 1 << 20

    def __init__(self, conn: Any) -> None:
        self._fd = conn.fileno()
        self._pending = bytearray()

    def read(self) -> tuple[list[tuple], bool]:
        """The messages complete so far, and whether the trial closed its end.

        Call it only when the connection is readable: it blocks otherwise.
        """
        data = os.read(self._fd, self.READ_SIZE)
        self._pending += data
        messages = []
        position = 0
        while True:
            frame = _next_frame(self._pending, position)
            if frame is None:
                break
            start, end = frame
            messages.append(pickle.loads(self._pending[start:end]))
            position = end
        del self._pending[:position]
        return messages, not data


def _next_frame(buffer: bytearray, position: int) -> tuple[int, int] | None:
    """Where the payload of the frame at ``position`` lies, if it is whole."""
    available = len(buffer) - position
    if available < 4:
        return None
    (size,) = struct.unpack_from("!i", buffer, position)
    header = 4
    if size == -1:
        if available < 12:
            return None
        (size,) = struct.unpack_from("!Q", buffer, position + 4)
        header = 12
    if available < header + size:
        return None
    return position + header, position + header + size


class TrialReport(NamedTuple):
    """One ``report`` of a trial, as its process sent it."""

    trial: RunningTrial
    metrics_json: bytes
    checkpoint_dir_name: str | None
    staged_checkpoint: str | None
    training_iteration: int
    progress_row: bytes
    # Set on the first result of a trial process: the columns of its rows.
    progress_columns: list[str] | None


@dataclass
class Collected:
    """What trial processes said since the last call of ``collect``."""

    results: list[TrialReport] = field(default_factory=list)
    ended: list[tuple[RunningTrial, str, str]] = field(default_factory=list)
    # (trial, 1 or 2 for stdout or stderr, bytes as the trial wrote them)
    output: list[tuple[RunningTrial, int, bytes]] = field(default_factory=list)

    def extend(self, more: Collected) -> None:
        self.results.extend(more.results)
        self.ended.extend(more.ended)
        self.output.extend(more.output)


class TrialProcesses:
    def __init__(self, preload: tuple[str, ...] = DEFAULT_PRELOAD) -> None:
        self.preload = preload
        self._context = _context(preload)
        self._lock = threading.Lock()
        self.running: dict[str, RunningTrial] = {}
        self.shutting_down = False

    def warm_up(self) -> None:
        """Start the template process now, so the first trial need not wait."""
        warm_up_template(self.preload)

    def start(self, start: TrialStart) -> None:
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=run_trial_process,
            args=(child_conn, start),
            name=f"trial-{start.trial_id}",
            daemon=False,
        )
        process.start()
        child_conn.close()
        with self._lock:
            self.running[start.trial_id] = RunningTrial(
                start.trial_id, start, process, parent_conn
            )
        log.info("trial %s started in process %d", start.trial_name, process.pid)

    def stop(self, trial_id: str, reason: str, *, interrupted: bool = False) -> None:
        """Ask a trial to stop; ``interrupted`` means it should run again later."""
        with self._lock:
            trial = self.running.get(trial_id)
        if trial is None or trial.stop_requested_at:
            return
        trial.interrupted = interrupted
        trial.stop_reason = reason
        trial.stop_requested_at = time.monotonic()
        try:
            trial.conn.send(("stop",))
        except OSError:
            pass

    def stop_all(self, reason: str, *, interrupted: bool = False) -> None:
        self.shutting_down = self.shutting_down or interrupted
        for trial_id in list(self.running):
            self.stop(trial_id, reason, interrupted=interrupted)

    def collect(self, timeout: float) -> Collected:
        """Wait up to ``timeout`` for trial messages; return all that arrived."""
        collected = Collected()
        with self._lock:
            trials = [t for t in self.running.values() if not t.ended]
        if not trials:
            time.sleep(timeout)
            return collected
        by_conn = {t.conn: t for t in trials}
        for conn in multiprocessing.connection.wait(list(by_conn), timeout):
            self._drain(by_conn[conn], collected)
        self._kill_overdue(trials)
        return collected

    def _drain(self, trial: RunningTrial, collected: Collected) -> None:
        try:
            messages, closed = trial.reader.read()
        except OSError:
            messages, closed = [], True
        for message in messages:
            if message[0] == "result":
                collected.results.append(TrialReport(trial, *message[1:]))
            elif message[0] == "output":
                collected.output.append((trial, message[1], message[2]))
            else:
                trial.outcome = (message[0], message[1])
        if closed:
            self._on_exit(trial, collected)

    def _on_exit(self, trial: RunningTrial, collected: Collected) -> None:
        trial.process.join(timeout=5)
        trial.ended = True
        trial.conn.close()
        with self._lock:
            self.running.pop(trial.trial_id, None)
        if trial.outcome and trial.outcome[0] == "finished":
            outcome, error = "finished", ""
        elif trial.outcome and trial.outcome[0] == "error":
            outcome, error = "errored", trial.outcome[1]
        elif trial.stop_requested_at:
            outcome = "interrupted" if trial.interrupted else "stopped"
            error = ""
        else:
            outcome, error = "errored", _describe_exit(trial.process.exitcode)
        collected.ended.append((trial, outcome, error))

    def _kill_overdue(self, trials: list[RunningTrial]) -> None:
        now = time.monotonic()
        for trial in trials:
            overdue = trial.stop_requested_at and now - trial.stop_requested_at
            if overdue and overdue > STOP_GRACE_S and trial.process.is_alive():
                log.warning("trial %s ignored stop; killing it", trial.trial_id)
                trial.process.kill()


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "the trial process did not exit"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the trial process was killed by {name}{hint}"
    return f"the trial process exited with code {exitcode} before finishing"
