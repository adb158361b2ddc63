"""Learning-rate schedules, as a pure function of the step.

* ``cosine``: linear warmup, then cosine decay to ``min_lr_ratio·lr`` exactly at
  this run's own horizon. A mid-way checkpoint of a cosine run is *not* a valid
  (N, D) point, because its learning rate has not decayed (Hoffmann et al. 2022,
  App. A; Porian et al. 2024), so every budget is its own run.
* ``wsd``: warmup, stable at ``lr``, then a (1 − sqrt) cooldown over the last
  ``cooldown_frac`` of the run (Hägele et al. 2024, "Scaling Laws and
  Compute-Optimal Training Beyond Fixed Training Durations"). The stable phase
  does not depend on the horizon, so one run can branch a short cooldown at
  several budgets and yield several valid (N, D) points.
* ``constant``: warmup, then constant (for diagnostics, not for fitting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaling.errors import ScalingError

SCHEDULES = ("cosine", "wsd", "constant")


@dataclass(frozen=True)
class Schedule:
    name: str
    lr: float
    warmup_steps: int
    total_steps: int
    min_lr_ratio: float = 0.1
    cooldown_frac: float = 0.2

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ScalingError(f"unknown schedule.name {self.name!r}; known: {', '.join(SCHEDULES)}")
        if not 0.0 <= self.cooldown_frac <= 1.0:
            raise ScalingError(f"schedule.cooldown_frac must be in [0, 1], got {self.cooldown_frac}")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise ScalingError(f"optim.lr must be a positive number, got {self.lr}")

    @property
    def cooldown_start(self) -> int:
        """First step of the WSD cooldown (the stable phase ends here)."""
        return self.total_steps - int(round(self.cooldown_frac * self.total_steps))

    def lr_at(self, step: int) -> float:
        """Learning rate used for the update at ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        floor = self.min_lr_ratio * self.lr
        if self.name == "constant":
            return self.lr
        if self.name == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps + 1) / span)
            return floor + 0.5 * (self.lr - floor) * (1.0 + math.cos(math.pi * progress))
        start = self.cooldown_start
        if step < start:
            return self.lr
        progress = min(1.0, (step - start + 1) / max(1, self.total_steps - start))
        return floor + (self.lr - floor) * (1.0 - math.sqrt(progress))
