"""Progress during ``fit()``: a table in a terminal, plain lines otherwise.

The table lists each trial's name, status, the tuned config values, its
iteration and latest metric; it is printed again every few seconds. Without a
terminal one summary line is printed instead. The last line gives the totals
and the elapsed time.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tune_client.search.variants import flatten_dict

TABLE_INTERVAL_S = 5.0
LINE_INTERVAL_S = 15.0
MAX_ROWS = 20


class ProgressReporter:
    def __init__(
        self,
        metric: str | None,
        mode: str | None,
        param_keys: list[str],
        verbose: int = 1,
        stream: Any = None,
    ) -> None:
        self.metric = metric
        self.mode = mode
        self.param_keys = param_keys[:6]
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.is_terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.last_print = self.started

    def maybe_report(self, trials: list) -> None:
        if self.verbose <= 0:
            return
        interval = TABLE_INTERVAL_S if self.is_terminal else LINE_INTERVAL_S
        now = time.monotonic()
        if now - self.last_print < interval:
            return
        self.last_print = now
        if self.is_terminal:
            self._print_table(trials)
        else:
            print(self._summary_line(trials), file=self.stream, flush=True)

    def final(self, trials: list, experiment_path: str) -> None:
        if self.verbose <= 0:
            return
        if self.is_terminal:
            self._print_table(trials)
        elapsed = time.monotonic() - self.started
        print(
            f"Experiment finished in {elapsed:.2f} s: {_counts(trials)}. "
            f"Results: {experiment_path}",
            file=self.stream,
            flush=True,
        )

    def _metric_of(self, trial: Any) -> Any:
        if self.metric:
            return trial.last_result.get(self.metric)
        return None

    def _best(self, trials: list) -> str:
        scored = [
            (self._metric_of(t), t)
            for t in trials
            if isinstance(self._metric_of(t), (int, float))
        ]
        if not scored or self.mode not in ("min", "max"):
            return ""
        pick = min if self.mode == "min" else max
        value, trial = pick(scored, key=lambda pair: pair[0])
        return f"; best {self.metric}={value:.5g} ({trial.trial_name})"

    def _summary_line(self, trials: list) -> str:
        elapsed = time.monotonic() - self.started
        return f"[{elapsed:7.1f} s] trials: {_counts(trials)}{self._best(trials)}"

    def _print_table(self, trials: list) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table()
        for column in ["trial", "status", *self.param_keys, "iter", self.metric]:
            if column:
                table.add_column(column)
        for trial in trials[:MAX_ROWS]:
            config = flatten_dict(trial.config)
            status = trial.status
            if getattr(trial, "storage_error", ""):
                status += " (checkpoint upload failed)"
            row = [trial.trial_name, status]
            row += [_short(config.get(key)) for key in self.param_keys]
            row.append(str(trial.last_result.get("training_iteration", "")))
            if self.metric:
                row.append(_short(self._metric_of(trial)))
            table.add_row(*row)
        if len(trials) > MAX_ROWS:
            table.caption = f"... and {len(trials) - MAX_ROWS} more trials"
        console = Console(file=self.stream)
        console.print(self._summary_line(trials), highlight=False)
        console.print(table)


def _counts(trials: list) -> str:
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"


def _short(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)[:20]
