"""Create the Ray Tune virtualenv that the benchmark compares against.

Ray lives in its own venv so its many pinned dependencies never leak into the
project's environment, and so both flavors run the same workload scripts
through different interpreters.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
RAY_VENV = BENCH_DIR / "ray-venv"
RAY_PYTHON = RAY_VENV / "bin" / "python"
RAY_REQUIREMENTS = ("ray[tune]==2.60.0", "pandas")
# The stamp names the requirements, so changing the pin forces a reinstall.
STAMP = RAY_VENV / ".bench-installed"


def _stamp_text() -> str:
    """Return what the stamp must contain for the venv to count as current."""
    return "\n".join(RAY_REQUIREMENTS) + "\n"


def is_installed() -> bool:
    """Tell whether a previous run already finished installing Ray."""
    if not (RAY_PYTHON.exists() and STAMP.exists()):
        return False
    return STAMP.read_text() == _stamp_text()


def _run(cmd: list[str]) -> None:
    """Run an install step, failing loudly since nothing works without it."""
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def ensure_ray_env() -> Path:
    """Install Ray into its venv unless already done; return its python."""
    if is_installed():
        return RAY_PYTHON
    print(
        f"Installing Ray Tune into {RAY_VENV} (takes a few minutes, once)...",
        flush=True,
    )
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    if not RAY_PYTHON.exists():
        _run(["python3", "-m", "venv", str(RAY_VENV)])
    pip = [str(RAY_PYTHON), "-m", "pip", "install", "--quiet"]
    _run([*pip, "--upgrade", "pip"])
    _run([*pip, *RAY_REQUIREMENTS])
    STAMP.write_text(_stamp_text())
    return RAY_PYTHON


if __name__ == "__main__":
    ensure_ray_env()
    sys.exit(0)
