"""Fitting a run's length to its wall-clock budget (``train.fit_to_budget``).

With ``train.max_minutes`` set and ``train.fit_to_budget`` on, the trainer times
the first steps of a run and plans how many epochs (at most ``train.epochs``)
fit in the budget. The learning-rate schedule then runs over the planned epochs,
so it completes (an ``exp`` schedule decays fully, the last epochs can be
averaged) within the budget instead of being cut off in the middle.

The plan is made once, after :data:`PLAN_AFTER_STEPS` steps, saved in every
checkpoint and kept on resume, so a resumed run follows the schedule of an
uninterrupted one. Steps before the plan use ``train.epochs`` as the horizon.
Because the plan depends on the measured speed, a budget-fitted run is
reproducible on one machine but may plan another epoch count on another.

>>> timer = StepTimer()
>>> for seconds in (3.0, 1.0, 1.1, 0.9, 1.0, 1.0, 1.0):
...     timer.add(seconds)
>>> timer.ready, timer.step_seconds(), timer.first_step_overhead()
(True, 1.0, 2.0)
>>> epochs_within_budget(remaining_seconds=100, epoch=0, step=7, steps_per_epoch=10,
...                      step_seconds=1.0, epoch_overhead=2.0, max_epochs=40)
8
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

#: steps timed before the plan is made (the first one, with the data loader's start, is
#: only used for the per-epoch overhead)
PLAN_AFTER_STEPS = 7
#: share of the remaining budget planned for, the rest absorbing speed fluctuations
SAFETY = 0.97


@dataclass
class StepTimer:
    """Wall-clock durations of the first steps of an invocation (data loading included)."""

    durations: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.durations.append(seconds)

    @property
    def ready(self) -> bool:
        return len(self.durations) >= PLAN_AFTER_STEPS

    def step_seconds(self) -> float:
        """Median duration of a steady-state step."""
        return statistics.median(self.durations[1:])

    def first_step_overhead(self) -> float:
        """Extra time of the first step (loader start-up), paid again at every epoch."""
        return max(0.0, self.durations[0] - self.step_seconds())


def epochs_within_budget(
    *,
    remaining_seconds: float,
    epoch: int,
    step: int,
    steps_per_epoch: int,
    step_seconds: float,
    epoch_overhead: float,
    max_epochs: int,
) -> int:
    """How many epochs to plan: the current one (0-based ``epoch``, ``step`` steps done)
    plus the whole epochs that fit in :data:`SAFETY` of ``remaining_seconds``; at
    most ``max_epochs``, and never fewer than the current epoch."""
    left_in_epoch = (steps_per_epoch - step) * step_seconds
    per_epoch = steps_per_epoch * step_seconds + epoch_overhead
    more = int((remaining_seconds * SAFETY - left_in_epoch) // per_epoch)
    return max(epoch + 1, min(max_epochs, epoch + 1 + more))
