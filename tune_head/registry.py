"""The head's list of live experiments, so a restarted head can reload them.

One small JSON file in the head's state folder, replaced atomically on every
change. It names each unfinished experiment's folder (or bucket URI); the
experiment's own files hold everything else.
"""

from __future__ import annotations

import json
import os

from tune_head.experiment_storage import write_atomically

REGISTRY_FILE = "experiments.json"


class ExperimentRegistry:
    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, REGISTRY_FILE)
        os.makedirs(state_dir, exist_ok=True)
        self.entries: dict[str, dict] = self._read()

    def _read(self) -> dict[str, dict]:
        try:
            with open(self.path, "rb") as f:
                return {e["experiment_id"]: e for e in json.loads(f.read())}
        except FileNotFoundError:
            return {}

    def _write(self) -> None:
        data = json.dumps(list(self.entries.values()), indent=1).encode()
        write_atomically(self.path, data)

    def add(self, experiment_id: str, path: str, filesystem_pickle: bytes) -> None:
        self.entries[experiment_id] = {
            "experiment_id": experiment_id,
            "path": path,
            "filesystem": filesystem_pickle.hex(),
        }
        self._write()

    def remove(self, experiment_id: str) -> None:
        if self.entries.pop(experiment_id, None) is not None:
            self._write()
