"""Trial placement: which worker has room for a trial's resources.

No I/O: the head tells the placer about workers and trials and asks where a
trial fits. Workers are filled one at a time (the fullest worker that fits
first), which keeps whole machines free for large trials.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field


@dataclass
class WorkerCapacity:
    worker_id: str
    total: dict[str, float]
    used: dict[str, float] = field(default_factory=dict)
    draining: bool = False

    def free(self) -> dict[str, float]:
        return {k: v - self.used.get(k, 0.0) for k, v in self.total.items()}

    def fits(self, request: dict[str, float]) -> bool:
        free = self.free()
        return all(free.get(k, 0.0) + 1e-9 >= v for k, v in request.items() if v > 0)


class Placer:
    """Workers' capacities and which trial holds what on which worker.

    Each trial holds at most one allocation, so releasing a trial twice, or
    one that was never reserved (its end reported after a head restart),
    frees nothing that other trials hold.
    """

    def __init__(self) -> None:
        self.workers: dict[str, WorkerCapacity] = {}
        self.allocations: dict[str, tuple[str, dict[str, float]]] = {}

    def add_worker(self, worker_id: str, resources: dict[str, float]) -> None:
        self.workers[worker_id] = WorkerCapacity(worker_id, dict(resources))

    def remove_worker(self, worker_id: str) -> None:
        self.workers.pop(worker_id, None)
        for trial_id, (holder, _) in list(self.allocations.items()):
            if holder == worker_id:
                del self.allocations[trial_id]

    def place(
        self, request: dict[str, float], unusable: Collection[str] = ()
    ) -> str | None:
        """The worker to run a trial with ``request`` on, or None if none fits.

        ``unusable`` workers (disconnected ones, say) are passed over, so one
        that cannot take the trial now does not hold up the others.
        """
        candidates = [
            w
            for w in self.workers.values()
            if not w.draining and w.worker_id not in unusable and w.fits(request)
        ]
        if not candidates:
            return None
        best = min(candidates, key=lambda w: sum(w.free().values()))
        return best.worker_id

    def reserve(self, worker_id: str, trial_id: str, request: dict[str, float]) -> None:
        self.release(trial_id)
        used = self.workers[worker_id].used
        for name, amount in request.items():
            used[name] = used.get(name, 0.0) + amount
        self.allocations[trial_id] = (worker_id, dict(request))

    def release(self, trial_id: str) -> None:
        worker_id, request = self.allocations.pop(trial_id, ("", {}))
        worker = self.workers.get(worker_id)
        if worker is None:
            return
        for name, amount in request.items():
            worker.used[name] = max(0.0, worker.used.get(name, 0.0) - amount)

    def could_ever_fit(self, request: dict[str, float]) -> bool:
        return any(
            all(w.total.get(k, 0.0) >= v for k, v in request.items())
            for w in self.workers.values()
        )

    def why_waiting(self, request: dict[str, float]) -> str:
        wanted = ", ".join(f"{v:g} {k}" for k, v in sorted(request.items()))
        if not self.workers:
            return "no worker has joined the cluster"
        return f"no worker has {wanted} free"
