"""Trials' standard output and error, shown to the people watching them.

A trial process sends what it writes as it comes, in pieces that need not
end at a line's end. The worker (in its own output, for operators) and the
client (in the user's terminal or notebook) print it as whole lines, each
led by the trial's name, as Ray Tune prints ``(trainable pid=...)`` lines.
"""

from __future__ import annotations

STDOUT = 1
STDERR = 2
# A piece of a line this long is printed without waiting for the line's end,
# so a progress bar that redraws itself with "\r" still shows.
MAX_PARTIAL_LINE = 4096


class OutputLines:
    """Pieces of trials' output, cut into whole lines led by ``(trial name)``."""

    def __init__(self) -> None:
        self._partial: dict[tuple[str, int], bytes] = {}

    def take(self, trial_id: str, name: str, stream: int, data: bytes) -> str:
        """The lines ``data`` completes, prefixed; an unfinished line waits."""
        key = (trial_id, stream)
        text = self._partial.pop(key, b"") + data
        cut = text.rfind(b"\n") + 1
        if cut == 0:
            if len(text) < MAX_PARTIAL_LINE:
                self._partial[key] = text
                return ""
            cut = len(text)
        if cut < len(text):
            self._partial[key] = text[cut:]
        return _prefixed(name, text[:cut])

    def finish(self, trial_id: str, name: str) -> list[tuple[int, str]]:
        """The unfinished last line of each stream of a trial that has ended."""
        left = []
        for stream in (STDOUT, STDERR):
            rest = self._partial.pop((trial_id, stream), b"")
            if rest:
                left.append((stream, _prefixed(name, rest)))
        return left


def _prefixed(name: str, text: bytes) -> str:
    prefix = f"({name}) "
    lines = text.decode("utf-8", errors="replace").splitlines()
    return "".join(f"{prefix}{line}\n" for line in lines)


class OutputBudget:
    """How much output one trial may pass on: a burst, then a steady rate
    (``tune-worker --output-rate``).

    What a trial writes beyond it is dropped from what watchers see (the
    worker's own output still has all of it), and the next line that passes
    says how much was dropped.
    """

    DEFAULT_BYTES_PER_S = 256 << 10
    BURST_SECONDS = 4

    def __init__(self, now: float, bytes_per_s: int = DEFAULT_BYTES_PER_S) -> None:
        self.bytes_per_s = bytes_per_s  # 0: no limit
        self.burst_bytes = bytes_per_s * self.BURST_SECONDS
        self.available = float(self.burst_bytes)
        self.updated = now
        self.dropped = 0
        # Whether what was passed on so far ends at a line's end.
        self.at_line_start = True

    def admit(self, data: bytes, now: float) -> bytes | None:
        """``data`` to pass on, after a note of what was dropped before it;
        None to drop it."""
        if not self._has_room(len(data), now):
            return None
        note = self._take_dropped_note()
        self.at_line_start = data.endswith(b"\n")
        return note + data

    def _has_room(self, size: int, now: float) -> bool:
        if not self.bytes_per_s:
            return True
        self.available = min(
            float(self.burst_bytes),
            self.available + (now - self.updated) * self.bytes_per_s,
        )
        self.updated = now
        if size > self.available:
            self.dropped += size
            return False
        self.available -= size
        return True

    def _take_dropped_note(self) -> bytes:
        """A line saying how much was dropped since the last note, or b""."""
        if not self.dropped:
            return b""
        note = (
            ("" if self.at_line_start else "\n")
            + f"[{self.dropped} bytes of this trial's output not shown: it wrote "
            f"faster than {self.bytes_per_s / 1024:g} KiB/s. The worker's own "
            "output has all of it.]\n"
        )
        self.dropped = 0
        return note.encode()
