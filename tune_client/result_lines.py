"""A result's line in result.json and its line in progress.csv.

A trial makes both lines for each result it reports, in its own process, so
the head appends bytes instead of parsing the result and formatting a line:
at thousands of results a second that was a third of the head's work. The
head formats a progress.csv line itself only when a trial's columns differ
from the file's.

A progress.csv line holds the values the result has after a trip through
its JSON (the form result.json keeps, which the head formats from): NaN
becomes empty, tuples become lists, numpy scalars become numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
from json.encoder import encode_basestring_ascii
from typing import Any

# Values that come back from JSON as they went in, and so format the same
# (floats only when finite).
_UNCHANGED_BY_JSON = {str, int, float, bool, type(None)}
_CSV_SPECIAL = frozenset(',"\r\n')
_NOT_FINITE = frozenset(("nan", "inf", "-inf"))


def _json_default(value: Any) -> Any:
    """Make numpy scalars and arrays, and anything else, JSON-writable."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return repr(value)


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def encode_result(result: dict) -> tuple[bytes, bool]:
    """One result as JSON, and whether it was finite: NaN and infinities
    become null."""
    try:
        text = json.dumps(result, default=_json_default, allow_nan=False)
        finite = True
    except ValueError:
        cleaned = {k: _finite_or_none(v) for k, v in result.items()}
        text = json.dumps(cleaned, default=_json_default)
        finite = False
    return text.encode(), finite


def columns_of(result: dict) -> list[str]:
    """The columns a first result gives a new progress.csv: every key whose
    value is not a dict (nested dicts stay in result.json only)."""
    return [key for key, value in result.items() if not isinstance(value, dict)]


class RowFormatter:
    """CSV lines, as ``csv.writer`` writes them, for one fixed list of columns."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = list(columns)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)

    def header(self) -> bytes:
        return self._line(self.columns)

    def row(self, result: dict) -> bytes:
        """The line of a result as read back from its JSON."""
        return self._line([result.get(column, "") for column in self.columns])

    def row_of_report(self, result: dict, result_json: bytes, finite: bool) -> bytes:
        """The line of a result before its JSON trip, read back only if needed.

        ``finite``: the result holds no NaN or infinity (its JSON had none).
        """
        values = [result.get(column, "") for column in self.columns]
        if not finite or not set(map(type, values)) <= _UNCHANGED_BY_JSON:
            return self.row(json.loads(result_json))
        return self._line(values)

    def _line(self, values: list) -> bytes:
        self._writer.writerow(values)
        line = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return line.encode()


class ResultLines:
    """Both lines of each result one trial process reports.

    Most results are flat: numbers, strings, booleans and None under string
    keys. Their two lines are made in one pass that formats each value once,
    byte for byte what ``json.dumps`` and ``csv.writer`` would write; any
    other result goes through those two. The progress.csv columns are those
    of the first result (``announced`` says so once, for the head).
    """

    def __init__(self) -> None:
        self.formatter: RowFormatter | None = None
        self._json_keys: dict[str, str] = {}

    def encode(self, result: dict) -> tuple[bytes, bytes, list[str] | None]:
        """The JSON line, the CSV line, and the columns if new."""
        announced = None
        if self.formatter is None:
            announced = columns_of(result)
            self.formatter = RowFormatter(announced)
        lines = self._encode_flat(result)
        if lines is None:
            result_json, finite = encode_result(result)
            lines = (
                result_json,
                self.formatter.row_of_report(result, result_json, finite),
            )
        return (*lines, announced)

    def _encode_flat(self, result: dict) -> tuple[bytes, bytes] | None:
        json_items = []
        csv_values = {}
        for key, value in result.items():
            json_key = self._json_keys.get(key)
            if json_key is None:
                if type(key) is not str:
                    return None
                json_key = self._json_keys[key] = encode_basestring_ascii(key) + ": "
            kind = type(value)
            if kind is float:
                text = repr(value)
                if text in _NOT_FINITE:
                    return None
                json_items.append(json_key + text)
                csv_values[key] = text
            elif kind is str:
                json_items.append(json_key + encode_basestring_ascii(value))
                csv_values[key] = _csv_field(value)
            elif kind is int:
                text = repr(value)
                json_items.append(json_key + text)
                csv_values[key] = text
            elif kind is bool:
                json_items.append(json_key + ("true" if value else "false"))
                csv_values[key] = "True" if value else "False"
            elif value is None:
                json_items.append(json_key + "null")
                csv_values[key] = ""
            else:
                return None
        columns = self.formatter.columns
        if len(columns) == 1:  # csv.writer quotes a lone empty field
            return None
        result_json = "{" + ", ".join(json_items) + "}"
        row = ",".join([csv_values.get(column, "") for column in columns])
        return result_json.encode(), (row + "\r\n").encode()


def _csv_field(text: str) -> str:
    if _CSV_SPECIAL.isdisjoint(text):
        return text
    return '"' + text.replace('"', '""') + '"'
