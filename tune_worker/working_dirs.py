"""The user's ``working_dir``, unpacked once per worker and put on sys.path.

``tune.init(working_dir=...)`` ships a zip of the folder through the object
store; trials import the user's modules from the unpacked copy.
"""

from __future__ import annotations

import os
import shutil
import threading
import zipfile


class WorkingDirs:
    def __init__(self, root: str) -> None:
        self.root = root
        self._lock = threading.Lock()

    def unpack(self, object_id: str, zip_path: str) -> str:
        """The folder holding the unpacked zip ``zip_path`` (unpacked once)."""
        target = os.path.join(self.root, object_id)
        with self._lock:
            if not os.path.isdir(target):
                partial = f"{target}.partial"
                shutil.rmtree(partial, ignore_errors=True)
                with zipfile.ZipFile(zip_path) as archive:
                    archive.extractall(partial)
                os.rename(partial, target)
        return target
