"""Trial schedulers: they read each result and decide whether a trial goes on.

Schedulers run on the head. ``FIFOScheduler`` lets every trial run to its end.
"""

from __future__ import annotations

from tune_client.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

__all__ = ["FIFOScheduler", "TrialScheduler"]
