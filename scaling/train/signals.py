"""Graceful stop on SIGTERM, SIGINT and SIGUSR2, and the hand-over to SLURM's requeue.

SLURM sends SIGTERM (or, with submitit, SIGUSR2) some seconds before it kills a
preempted or timed-out job. The handler only raises a flag; the training loop
checks it between steps, writes a checkpoint and the run record, and exits, so
the requeued job resumes from exactly that step.

A handler installed before ours is not lost: after the checkpoint and the record
are written, :meth:`StopRequest.forward` calls it. Under submitit that is the
handler that requeues the job (``scontrol requeue``) and exits; it must run
*after* the checkpoint, never instead of it, or a requeued job would restart from
an older step. The previous handlers are remembered past :meth:`restore` for
that reason (the loop restores them before the run record is written).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

STOP_SIGNALS = tuple(s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR2", None)) if s is not None)

Handler = Callable[[int, FrameType | None], Any]


def requeue_signal() -> int | None:
    """The signal submitit asks SLURM to send before a time limit (``--signal=USR2@...``)."""
    name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    sig = getattr(signal, name, None)
    return int(sig) if sig is not None else None


class StopRequest:
    """Remembers the stop signals received and the handlers ours replaced."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first one: it names the interruption
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}
        self._replaced: dict[int, Any] = {}  # kept after restore(), for forward()

    def install(self) -> StopRequest:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._previous[sig] = signal.signal(sig, self._handle)
        self._replaced = dict(self._previous)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if signum not in self.received:
            self.received.append(signum)

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

    def chained_handler(self) -> tuple[int, Handler] | None:
        """(signal, handler) to pass the stop on to, if a Python handler was replaced.

        The requeue signal wins when it arrived at all (submitit's preemption test
        sends SIGTERM first, then SIGUSR2; only the latter's handler requeues).
        Python's own SIGINT handler is not chained: it would only raise
        KeyboardInterrupt after a clean, checkpointed exit.
        """
        usr = requeue_signal()
        order = sorted(self.received, key=lambda s: s != usr)
        for sig in order:
            handler = self._replaced.get(sig)
            if callable(handler) and handler is not signal.default_int_handler:
                return sig, handler
        return None

    def forward(self) -> None:
        """Call the replaced handler for the stop received; call only once the checkpoint is on disk.

        Under submitit this requeues the job and exits the process (SystemExit).
        """
        chained = self.chained_handler()
        if chained is not None:
            sig, handler = chained
            owner = getattr(handler, "__qualname__", repr(handler))
            print(
                f"{signal.Signals(sig).name}: checkpoint saved; passing the signal on to {owner}",
                file=sys.stderr,
                flush=True,
            )
            handler(sig, None)
