"""Which GPUs each trial on this worker may use.

A trial asking for ``gpu: k`` (k whole) gets k devices no other trial holds; a
trial asking for a fraction below one gets a share of one device, which other
fractional trials may share too, as Ray does (two ``gpu: 0.5`` trials both see
``CUDA_VISIBLE_DEVICES=0``). A fraction goes to the device it fills best, so
whole devices stay free for whole requests. More than one GPU must be a whole
number, Ray's rule: ``gpu: 1.5`` is refused. The trial sees its devices as
``CUDA_VISIBLE_DEVICES``; a trial asking for none sees none, so it cannot take
a device another trial holds.

The ids handed out are the worker's own: when the worker itself was started
with ``CUDA_VISIBLE_DEVICES`` (one worker per GPU, say), its trials get
devices from that list, as Ray's do; otherwise devices 0 to n-1.
"""

from __future__ import annotations

import os
import threading

# Shares are counted in whole units of Ray's precision (0.0001 GPU), so that
# ten trials of 0.1 fill a device exactly instead of leaving float dust.
UNITS_PER_GPU = 10_000


class GpuRequestError(ValueError):
    """A trial's GPU request is not a whole number of GPUs nor a fraction of one."""


class GpusBusyError(RuntimeError):
    """The worker has no device with the free share a trial asks for."""


def _units(amount: float) -> int:
    return round(amount * UNITS_PER_GPU)


def check_request(amount: float) -> None:
    """Refuse a request Ray refuses: more than one GPU, but not a whole number."""
    if amount < 0:
        raise GpuRequestError(f"gpu={amount:g}: a GPU request cannot be negative")
    if amount > 1 and not float(amount).is_integer():
        raise GpuRequestError(
            f"gpu={amount:g}: a trial may ask for a whole number of GPUs or for a "
            "fraction of one below 1 (as in Ray); ask for "
            f"{int(amount)} or {int(amount) + 1} GPUs instead"
        )


def worker_devices(count: int, visible: str | None) -> list[int | str]:
    """The ids of the worker's ``count`` devices, taken from ``visible`` if set.

    ``visible`` is the worker's CUDA_VISIBLE_DEVICES: indices or UUIDs.
    """
    if visible is None:
        return list(range(count))
    listed = [d.strip() for d in visible.split(",") if d.strip()]
    if len(listed) < count:
        raise ValueError(
            f"the worker offers {count} GPUs but CUDA_VISIBLE_DEVICES={visible!r} "
            f"lists {len(listed)}: offer at most {len(listed)} (--gpus) or list "
            "more devices"
        )
    return [int(d) if d.isdigit() else d for d in listed[:count]]


class GpuIds:
    """The free share of each of the worker's devices, and what each trial holds."""

    def __init__(self, count: float, visible: str | None = None) -> None:
        """``visible`` defaults to the worker's own CUDA_VISIBLE_DEVICES."""
        if visible is None:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.total = int(count)
        self.devices = worker_devices(self.total, visible)
        self._free = [UNITS_PER_GPU] * self.total
        self._held: dict[str, dict[int, int]] = {}
        self._lock = threading.Lock()

    def allocate(self, trial_id: str, amount: float) -> list[int | str] | None:
        """The device ids for a trial, or None when the worker has no GPUs.

        Raises GpuRequestError for a request such as 1.5 and GpusBusyError
        when no device has room; a trial allocating again gives back what it
        held first.
        """
        if self.total == 0:
            return None
        check_request(amount)
        with self._lock:
            self._release(trial_id)
            shares = self._choose(_units(amount))
            if shares is None:
                raise GpusBusyError(
                    f"trial {trial_id} asks for {amount:g} GPU; free shares of "
                    f"this worker's devices: {self._describe_free()}"
                )
            for device, units in shares.items():
                self._free[device] -= units
            self._held[trial_id] = shares
            return [self.devices[index] for index in sorted(shares)]

    def release(self, trial_id: str) -> None:
        """Give back a trial's devices and shares; nothing if it holds none."""
        with self._lock:
            self._release(trial_id)

    def free_shares(self) -> list[float]:
        """How much of each device is free, in GPUs (1.0 is a whole device)."""
        with self._lock:
            return [units / UNITS_PER_GPU for units in self._free]

    def _release(self, trial_id: str) -> None:
        for device, units in self._held.pop(trial_id, {}).items():
            self._free[device] += units

    def _choose(self, units: int) -> dict[int, int] | None:
        if units == 0:
            return {}
        if units < UNITS_PER_GPU:
            return self._best_fit(units)
        whole = [d for d, free in enumerate(self._free) if free == UNITS_PER_GPU]
        wanted = units // UNITS_PER_GPU
        if len(whole) < wanted:
            return None
        return {device: UNITS_PER_GPU for device in whole[:wanted]}

    def _best_fit(self, units: int) -> dict[int, int] | None:
        """The device whose free share is smallest but still enough."""
        fitting = [d for d, free in enumerate(self._free) if free >= units]
        if not fitting:
            return None
        device = min(fitting, key=lambda d: self._free[d])
        return {device: units}

    def _describe_free(self) -> str:
        return ", ".join(
            f"device {self.devices[index]}: {free / UNITS_PER_GPU:g}"
            for index, free in enumerate(self._free)
        )
