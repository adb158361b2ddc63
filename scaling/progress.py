"""Progress with an ETA for the phases that take more than a few seconds.

Token-cache preparation, the bootstrap of the fits and a sweep each report through one
:class:`PhaseProgress`: on a terminal a line redrawn in place, elsewhere (a log file, a CI
job, a pipe into ``tee``) one plain line every ``every_s`` seconds, so a long phase is never
silent and never floods a log. The ETA assumes the remaining work goes at the rate seen so
far, measured in the phase's own unit of work (bytes, resamples, FLOPs), not in items, so
unequal items (a 15k- and a 600k-parameter run) do not skew it.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TextIO

#: A phase that ends within this many seconds prints nothing at all: only long phases report.
QUIET_S = 2.0
_LINE = re.compile(r"^.+: (\d+% · elapsed \d+:\d\d:\d\d( · ETA \d+:\d\d:\d\d)?|done in \d+:\d\d:\d\d)$")


def is_progress_line(line: str) -> bool:
    """Whether ``line`` is one of :class:`PhaseProgress`'s, so callers (and tests) can tell it from a warning."""
    return bool(_LINE.match(line.lstrip("\r")))


def format_seconds(seconds: float) -> str:
    """``h:mm:ss``, the format of every elapsed and ETA figure the harness prints."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PhaseProgress:
    """Report ``label: 42% · elapsed 0:00:12 · ETA 0:00:16`` while ``done`` climbs towards ``total``."""

    def __init__(self, label: str, total: float, *, every_s: float = 10.0, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = float(total)
        self.every_s = every_s
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.last_print = self.started
        self.printed = False
        self.done = 0.0

    def line(self) -> str:
        """The current progress line (what :meth:`update` prints)."""
        elapsed = time.monotonic() - self.started
        share = self.done / self.total if self.total > 0 else 1.0
        text = f"{self.label}: {100 * share:.0f}% · elapsed {format_seconds(elapsed)}"
        if 0 < self.done < self.total:
            text += f" · ETA {format_seconds(elapsed * (self.total - self.done) / self.done)}"
        return text

    def update(self, done: float) -> None:
        """Set the work done so far; prints when due (always redraws on a terminal)."""
        self.done = min(float(done), self.total)
        now = time.monotonic()
        if now - self.started < QUIET_S:
            return
        if self.tty:
            print("\r" + self.line(), end="", file=self.stream, flush=True)
            self.printed = True
        elif now - self.last_print >= self.every_s:
            print(self.line(), file=self.stream, flush=True)
            self.last_print, self.printed = now, True

    def advance(self, amount: float = 1.0) -> None:
        """Add ``amount`` units of work done."""
        self.update(self.done + amount)

    def close(self) -> None:
        """Print the phase's total time once (unless it was over within :data:`QUIET_S`)."""
        elapsed = time.monotonic() - self.started
        if self.printed or elapsed >= QUIET_S:
            took = format_seconds(elapsed)
            print(("\r" if self.tty else "") + f"{self.label}: done in {took}", file=self.stream, flush=True)
