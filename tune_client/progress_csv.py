"""Lines of a trial's progress.csv, formatted alike by trials and by the head.

A trial formats the line of each result it reports, in its own process, so
the head appends bytes instead of parsing the result and formatting a line:
at thousands of results a second that was a third of the head's work. The
head formats lines itself only when a trial's columns differ from the file's.

A line holds the values the result has after a trip through its JSON (the
form result.json keeps, which the head formats from): NaN becomes empty,
tuples become lists, numpy scalars become numbers.
"""

from __future__ import annotations

import csv
import io
import json

# Values that come back from JSON as they went in, and so format the same
# (floats only when finite).
_UNCHANGED_BY_JSON = {str, int, float, bool, type(None)}


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
