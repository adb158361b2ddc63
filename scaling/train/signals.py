"""Graceful stop on SIGTERM, SIGINT and SIGUSR2.

SLURM sends SIGTERM (or, with submitit, SIGUSR2) some seconds before it kills a
preempted or timed-out job. The handler only raises a flag; the training loop
checks it between steps, writes a checkpoint and the run record, and exits, so
the requeued job resumes from exactly that step. A handler installed before ours
(submitit's, which requeues the job) is called after the checkpoint is saved.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

STOP_SIGNALS = tuple(s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR2", None)) if s is not None)


class StopRequest:
    """Remembers the first stop signal received and the handlers it replaced."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopRequest:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Ask for a stop as if ``signum`` had arrived (used for planned interruptions)."""
        self._handle(signum, None)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def chained_handler(self) -> Callable[[int, FrameType | None], Any] | None:
        """The handler ours replaced for the received signal, if it was a Python callable."""
        previous = self._previous.get(self.signum) if self.signum is not None else None
        return previous if callable(previous) else None
