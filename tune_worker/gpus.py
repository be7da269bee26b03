"""Which GPUs each trial on this worker may use.

A trial asking for ``gpu: k`` gets k whole devices of the worker's own, given
to it as ``CUDA_VISIBLE_DEVICES``; a trial asking for none sees none, so it
cannot take a device another trial holds. Fractions round up to a device.
"""

from __future__ import annotations

import math
import threading


class GpuIds:
    def __init__(self, count: float) -> None:
        self.total = int(count)
        self._free = list(range(self.total))
        self._held: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def allocate(self, trial_id: str, amount: float) -> list[int] | None:
        """The device ids for a trial, or None when the worker has no GPUs."""
        if self.total == 0:
            return None
        wanted = math.ceil(amount) if amount > 0 else 0
        with self._lock:
            if wanted > len(self._free):
                raise RuntimeError(
                    f"trial {trial_id} asks for {wanted} GPUs; {len(self._free)} free"
                )
            ids, self._free = self._free[:wanted], self._free[wanted:]
            self._held[trial_id] = ids
            return ids

    def release(self, trial_id: str) -> None:
        with self._lock:
            self._free.extend(self._held.pop(trial_id, []))
            self._free.sort()
