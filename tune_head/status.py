"""What `tune status` shows: workers, their resources, experiments, waits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proto.generated import tune_pb2
from tune_client.trainable import format_resources
from tune_head.trial import TrialStatus

if TYPE_CHECKING:
    from tune_head.head import Experiment, Head


def cluster_status(head: Head) -> tune_pb2.ClusterStatus:
    """The cluster's state; the caller holds the head's lock."""
    workers = [
        tune_pb2.WorkerStatus(
            worker_id=w.worker_id,
            hostname=w.hostname,
            total=w.resources,
            free=head.placer.workers[w.worker_id].free(),
            trial_ids=_running_on(head, w.worker_id),
        )
        for w in head.workers.values()
    ]
    experiments = [
        tune_pb2.ExperimentStatus(
            experiment_id=e.experiment_id,
            name=e.name,
            path=e.path,
            trials_by_status=e.controller.counts_by_status(),
            finished=e.finished,
            pending_reason=pending_reason(head, e),
        )
        for e in head.experiments.values()
    ]
    return tune_pb2.ClusterStatus(workers=workers, experiments=experiments)


def _running_on(head: Head, worker_id: str) -> list[str]:
    return [
        t.trial_id
        for e in head.experiments.values()
        for t in e.controller.trials.values()
        if t.worker_id == worker_id and t.status is TrialStatus.RUNNING
    ]


def pending_reason(head: Head, exp: Experiment) -> str:
    """Why an experiment's pending trials wait, or "" when none does."""
    pending = [
        t for t in exp.controller.trials.values() if t.status is TrialStatus.PENDING
    ]
    if not pending or exp.finished:
        return ""
    request = pending[0].resources
    if head.workers and not head.placer.could_ever_fit(request):
        wanted = format_resources(request)
        return f"no worker is big enough for a trial asking {wanted}"
    return head.placer.why_waiting(request)
