"""What an operator runs against the test's daemons: `tune ...` and log files."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, daemon_env


def tune_cli(daemons, *args: str) -> subprocess.CompletedProcess:
    """Run ``tune ARGS`` against the daemons, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "tune_client.cli", *args],
        env=daemon_env(TUNE_ADDRESS=daemons.address, TUNE_TOKEN=daemons.token),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )


def tune_status(daemons) -> str:
    shown = tune_cli(daemons, "status")
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def head_log(daemons) -> str:
    """What the first head the test started has logged so far."""
    return Path(daemons.tmp_path, "head-0.log").read_text()
