"""What both daemons share: flags read from the environment, logging, signals.

Every flag ``--some-flag`` also reads ``<PREFIX>_SOME_FLAG`` (``TUNE_HEAD_PORT``,
``TUNE_WORKER_CPUS``, ...), so one image runs under compose, Kubernetes and
systemd unchanged. The cluster token reads ``TUNE_TOKEN`` as well.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable


class EnvDefaultsParser(argparse.ArgumentParser):
    """An ArgumentParser whose options default to environment variables."""

    def __init__(self, env_prefix: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.env_prefix = env_prefix

    def add_flag(self, flag: str, *, env: tuple[str, ...] = (), **kwargs) -> None:
        names = (f"{self.env_prefix}_{flag.lstrip('-').upper().replace('-', '_')}",)
        names += env
        for name in names:
            if os.environ.get(name):
                kwargs["default"] = os.environ[name]
                kwargs.pop("required", None)
                break
        help_text = kwargs.get("help", "")
        if help_text != argparse.SUPPRESS:  # internal flags stay out of --help
            kwargs["help"] = f"{help_text} [env: {' or '.join(names)}]".strip()
        self.add_argument(flag, **kwargs)


def setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def on_termination(callback: Callable[[str], None]) -> None:
    """Call ``callback(reason)`` once on SIGTERM or SIGINT."""

    def handler(signum, frame):
        callback(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def exit_with_parent(parent_pid: int, callback: Callable[[str], None]) -> None:
    """Call ``callback`` when the process that started us is gone.

    The embedded cluster's daemons use this so that a client killed without
    warning (SIGKILL) never leaves them behind.
    """
    if not parent_pid:
        return

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(0.2):
            if os.getppid() != parent_pid:
                callback(f"parent process {parent_pid} exited")
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
