"""``Result`` and ``ResultGrid``: what ``Tuner.fit()`` hands back, as in Ray Tune.

A ``Result`` is one trial: its last reported metrics, its config, its latest
checkpoint, its error if it failed and the folder it wrote. A ``ResultGrid`` is
every trial of an experiment, with the helpers to pick the best one and to see
them all as a pandas DataFrame.

Metric names may reach into nested results with ``/``: ``"val/loss"`` is
``{"val": {"loss": ...}}``, the same names the DataFrames use as columns.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tune_client import storage
from tune_client.config import check_mode
from tune_client.errors import TuneConfigError

if TYPE_CHECKING:
    import pandas as pd
    from fsspec import AbstractFileSystem

    from tune_client.checkpoint import Checkpoint

__all__ = ["AUTO_FILLED_FIELDS", "Result", "ResultGrid"]

logger = logging.getLogger(__name__)

AUTO_FILLED_FIELDS: tuple[str, ...] = (
    "training_iteration",
    "time_this_iter_s",
    "time_total_s",
    "timestamp",
    "date",
    "done",
    "trial_id",
    "experiment_id",
    "hostname",
    "node_ip",
    "pid",
    "time_since_restore",
    "iterations_since_restore",
    "checkpoint_dir_name",
)
"""Fields the service adds to every reported result; the rest are the user's."""

RESULT_FILE = "result.json"
_NOT_USER_METRICS = frozenset(AUTO_FILLED_FIELDS) | {"config", "experiment_tag"}
_SCOPES = ("last", "all", "avg", "last-5-avg", "last-10-avg")


def _flatten(d: Mapping[str, Any], prefix: str = "", sep: str = "/") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``, with ``prefix`` before every key."""
    flat: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, name, sep))
        else:
            flat[name] = value
    return flat


def _is_user_metric(name: str) -> bool:
    return name.split("/", 1)[0] not in _NOT_USER_METRICS


def _is_config_key(name: str) -> bool:
    return name.split("/", 1)[0] == "config"


def _filesystem_name(filesystem: Any) -> str:
    if filesystem is None:
        return "local"
    protocol = getattr(filesystem, "protocol", None)
    if isinstance(protocol, (tuple, list)):
        protocol = protocol[0] if protocol else None
    if protocol in (None, "file", "local"):
        return "local"
    return str(protocol)


def _read_lines(path: str, filesystem: Any) -> list[str] | None:
    """The lines of a text file, or None when it does not exist."""
    try:
        if filesystem is None and not storage.is_uri(path):
            with open(storage.strip_file_scheme(path), encoding="utf-8") as f:
                return f.read().splitlines()
        fs, fs_path = storage.get_filesystem(path, filesystem)
        with fs.open(fs_path, "rb") as f:
            return f.read().decode("utf-8").splitlines()
    except FileNotFoundError:
        return None


def _parse_records(lines: list[str], path: str) -> list[dict]:
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            # A trial killed mid-write leaves a cut-off line; keep the rest.
            logger.warning("skipping unreadable line %d of %s", number, path)
    return records


@dataclass
class Result:
    """One trial's outcome, with the attribute names of Ray Tune's ``Result``."""

    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    error: Exception | None = None
    path: str = ""
    best_checkpoints: list[tuple[Checkpoint, dict]] = field(default_factory=list)
    filesystem: AbstractFileSystem | None = None
    _metrics_dataframe: pd.DataFrame | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.config and isinstance(self.metrics.get("config"), Mapping):
            self.config = dict(self.metrics["config"])

    @property
    def metrics_dataframe(self) -> pd.DataFrame:
        """Every result the trial reported, one row each, read from result.json.

        Nested results become ``a/b`` columns. Read once, then cached; empty
        when the trial folder holds no result.json.
        """
        if self._metrics_dataframe is None:
            self._metrics_dataframe = self._load_metrics_dataframe()
        return self._metrics_dataframe

    @metrics_dataframe.setter
    def metrics_dataframe(self, value: pd.DataFrame | None) -> None:
        self._metrics_dataframe = value

    def _load_metrics_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        if not self.path:
            return pd.DataFrame()
        file_path = storage.join(self.path, RESULT_FILE)
        lines = _read_lines(file_path, self.filesystem)
        records = _parse_records(lines or [], file_path)
        if not records:
            return pd.DataFrame()
        return pd.json_normalize(records, sep="/")

    def _shown_metrics(self) -> dict:
        return {k: v for k, v in self.metrics.items() if k not in _NOT_USER_METRICS}

    def _repr(self, indent: int = 0) -> str:
        shown: dict[str, Any] = {
            "metrics": self._shown_metrics(),
            "path": self.path,
            "filesystem": _filesystem_name(self.filesystem),
            "checkpoint": self.checkpoint,
        }
        if self.error is not None:
            shown["error"] = type(self.error).__name__
        pad = " " * indent
        fields = ",\n".join(f"{pad}  {k}={v!r}" for k, v in shown.items())
        return f"{pad}{type(self).__name__}(\n{fields}\n{pad})"

    def __repr__(self) -> str:
        return self._repr()


class ResultGrid:
    """Every trial of an experiment, as Ray Tune's ``ResultGrid``."""

    def __init__(
        self,
        results: list[Result],
        experiment_path: str,
        default_metric: str | None = None,
        default_mode: str | None = None,
        *,
        filesystem: AbstractFileSystem | None = None,
    ) -> None:
        check_mode(default_mode, "ResultGrid")
        self._results = list(results)
        self._experiment_path = experiment_path
        self._default_metric = default_metric
        self._default_mode = default_mode
        if filesystem is None and self._results:
            filesystem = self._results[0].filesystem
        self._filesystem = filesystem

    @property
    def experiment_path(self) -> str:
        """The experiment folder: a local path or an fsspec URI."""
        return self._experiment_path

    @property
    def filesystem(self) -> AbstractFileSystem | None:
        """The fsspec filesystem holding the experiment; None when local."""
        return self._filesystem

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, index: int) -> Result:
        return self._results[index]

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    @property
    def errors(self) -> list[Exception]:
        """The error of every trial that failed."""
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self) -> int:
        """How many trials failed."""
        return len(self.errors)

    @property
    def num_terminated(self) -> int:
        """How many trials finished without an error."""
        return sum(1 for r in self._results if r.error is None)

    def get_best_result(
        self,
        metric: str | None = None,
        mode: str | None = None,
        scope: str = "last",
        filter_nan_and_inf: bool = True,
    ) -> Result:
        """The trial with the best ``metric``.

        ``metric`` and ``mode`` default to those set in ``TuneConfig``. ``scope``
        picks the value compared per trial: ``"last"`` its last result,
        ``"all"`` its best result ever, ``"avg"`` the mean of all its results,
        ``"last-5-avg"``/``"last-10-avg"`` the mean of its last 5 or 10 results.
        Trials that never reported ``metric`` are skipped; with
        ``filter_nan_and_inf`` so are those whose value is NaN or infinite.
        """
        check_mode(mode, "get_best_result")
        _check_scope(scope)
        metric = metric if metric is not None else self._default_metric
        mode = mode if mode is not None else self._default_mode
        if metric is None and len(self._results) == 1:
            return self._results[0]
        _check_metric_and_mode(metric, mode)
        return self._pick_best(metric, mode, scope, filter_nan_and_inf)

    def _pick_best(
        self, metric: str, mode: str, scope: str, filter_nan_and_inf: bool
    ) -> Result:
        best: Result | None = None
        best_score = math.nan
        reported = False
        for result in self._results:
            score = _trial_score(result, metric, mode, scope)
            if score is None:
                continue
            reported = True
            if filter_nan_and_inf and not math.isfinite(score):
                continue
            if best is None or _is_better(score, best_score, mode):
                best, best_score = result, score
        if not reported:
            raise self._missing_metric_error(metric, "metric")
        if best is None:
            raise TuneConfigError(
                f"every trial's {metric!r} is NaN or infinite, so none is best. "
                "Pass filter_nan_and_inf=False to compare them anyway, or pick "
                "another metric."
            )
        return best

    def _missing_metric_error(self, metric: str, arg: str) -> TuneConfigError:
        names: dict[str, None] = {}
        for result in self._results:
            names.update(dict.fromkeys(_flatten(result.metrics)))
        user = [n for n in names if _is_user_metric(n)]
        auto = [n for n in names if n in AUTO_FILLED_FIELDS]
        if not user and not auto:
            return TuneConfigError(
                f"no trial reported {metric!r}: no trial has reported any result "
                "yet. Report it with tune.report({...}) in the trainable."
            )
        listed = ", ".join(repr(n) for n in user + auto)
        return TuneConfigError(
            f"no trial reported a number for metric {metric!r}. The metrics "
            f"reported are: {listed}. Pass one of them as {arg}=..., or report "
            f"{metric!r} from the trainable."
        )

    def get_dataframe(
        self, filter_metric: str | None = None, filter_mode: str | None = None
    ) -> pd.DataFrame:
        """One row per trial: its results, its ``config/...`` and its ``logdir``.

        Without a filter each row is the trial's last result. With
        ``filter_metric`` and ``filter_mode`` it is the trial's result with the
        best ``filter_metric``; trials that never reported it are left out.
        """
        import pandas as pd

        check_mode(filter_mode, "get_dataframe")
        if (filter_metric is None) != (filter_mode is None):
            raise TuneConfigError(
                "get_dataframe: filter_metric and filter_mode go together; pass "
                'both (e.g. filter_metric="loss", filter_mode="min") or neither.'
            )
        rows = []
        for result in self._results:
            metrics_row = _metrics_row(result, filter_metric, filter_mode)
            if metrics_row is not None:
                rows.append(_trial_row(result, metrics_row))
        if filter_metric is not None and self._results and not rows:
            raise self._missing_metric_error(filter_metric, "filter_metric")
        if not rows:
            return pd.DataFrame()
        return pd.DataFrame(rows, columns=_ordered_columns(rows))

    def __repr__(self) -> str:
        if not self._results:
            return "ResultGrid<[]>"
        inner = ",\n".join(r._repr(indent=2) for r in self._results)
        return f"ResultGrid<[\n{inner}\n]>"


def _check_scope(scope: str) -> None:
    if scope not in _SCOPES:
        valid = ", ".join(repr(s) for s in _SCOPES)
        raise TuneConfigError(
            f"get_best_result: scope={scope!r} is not valid; use one of {valid}."
        )


def _check_metric_and_mode(metric: str | None, mode: str | None) -> None:
    missing = [name for name, v in (("metric", metric), ("mode", mode)) if v is None]
    if missing:
        raise TuneConfigError(
            f"get_best_result: no {' or '.join(missing)} given. Pass metric=... "
            'and mode="min" or "max" to get_best_result, or set them in '
            "TuneConfig(metric=..., mode=...)."
        )


def _as_number(value: Any) -> float | None:
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def _history(result: Result, metric: str) -> list[float]:
    """Every numeric value of ``metric`` in the trial's result.json, in order."""
    import pandas as pd

    frame = result.metrics_dataframe
    if metric not in frame.columns:
        return []
    return pd.to_numeric(frame[metric], errors="coerce").dropna().tolist()


def _trial_score(result: Result, metric: str, mode: str, scope: str) -> float | None:
    """The trial's value of ``metric`` under ``scope``; None if never reported."""
    last = _as_number(_flatten(result.metrics).get(metric))
    if scope == "last":
        return last
    values = _history(result, metric) or ([] if last is None else [last])
    if not values:
        return None
    if scope == "all":
        return _extreme(values, max if mode == "max" else min)
    window = values if scope == "avg" else values[-int(scope.split("-")[1]) :]
    return sum(window) / len(window)


def _extreme(values: list[float], pick: Any) -> float:
    not_nan = [v for v in values if not math.isnan(v)]
    return pick(not_nan) if not_nan else math.nan


def _is_better(score: float, best: float, mode: str) -> bool:
    if math.isnan(score):
        return False
    if math.isnan(best):
        return True
    return score > best if mode == "max" else score < best


def _metrics_row(result: Result, metric: str | None, mode: str | None) -> dict | None:
    """The trial's last result, or its result with the best ``metric``.

    None when ``metric`` is given and the trial never reported it as a number.
    """
    last = _flatten(result.metrics)
    if metric is None:
        return last
    import pandas as pd

    frame = result.metrics_dataframe
    if metric in frame.columns:
        values = pd.to_numeric(frame[metric], errors="coerce")
        if values.notna().any():
            best = values.idxmax() if mode == "max" else values.idxmin()
            return frame.loc[best].to_dict()
    return last if _as_number(last.get(metric)) is not None else None


def _trial_row(result: Result, metrics_row: dict) -> dict:
    """A DataFrame row: the metrics, then ``config/...`` from Result.config."""
    row = {k: v for k, v in metrics_row.items() if not _is_config_key(k)}
    row.update(_flatten(result.config, "config"))
    row["logdir"] = result.path
    return row


def _ordered_columns(rows: list[dict]) -> list[str]:
    """User metrics, then auto-filled fields, then config/..., then logdir."""
    groups: dict[str, dict[str, None]] = {"user": {}, "auto": {}, "config": {}}
    for row in rows:
        for key in row:
            if key == "logdir":
                continue
            if _is_config_key(key):
                groups["config"][key] = None
            elif _is_user_metric(key):
                groups["user"][key] = None
            else:
                groups["auto"][key] = None
    return [*groups["user"], *groups["auto"], *groups["config"], "logdir"]
