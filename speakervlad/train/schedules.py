"""Learning-rate and margin schedules as pure functions of the training position.

Nothing here holds state: the value at (epoch, step) is recomputed from the
config, so a resumed run gets exactly the values of an uninterrupted one.
Epochs and steps count from 0.

>>> from speakervlad.config import OptimConfig
>>> cfg = OptimConfig(optimizer="adam", lr=1e-3, scheduler="step", step_epochs=2)
>>> [round(learning_rate(cfg, 6, e, 0, 10), 6) for e in range(6)]
[0.001, 0.001, 0.0001, 0.0001, 1e-05, 1e-05]
"""
from __future__ import annotations

import math

from ..config import HeadConfig, OptimConfig
from ..errors import ConfigError

SCHEDULERS = ("step", "exp", "constant")


def learning_rate(
    optim: OptimConfig, epochs: int, epoch: int, step: int, steps_per_epoch: int
) -> float:
    """Learning rate for ``step`` (0-based) of ``epoch`` (0-based) in a run of ``epochs``."""
    if optim.scheduler == "constant":
        return optim.lr
    if optim.scheduler == "step":
        return step_decay(optim, epoch)
    if optim.scheduler == "exp":
        return warmup_exponential(optim, epochs, epoch * steps_per_epoch + step, steps_per_epoch)
    raise ConfigError(
        f"unknown optim.scheduler {optim.scheduler!r}; valid: {', '.join(SCHEDULERS)}"
    )


def step_decay(optim: OptimConfig, epoch: int) -> float:
    """Reference (VGG-Speaker-Recognition) Adam schedule, per epoch.

    ``lr * 0.1 ** (e // step_epochs)``; with ``restart_epoch`` > 0 the count
    ``e`` starts again from 0 at that epoch (a warm restart back to ``lr``).
    """
    if optim.step_epochs <= 0:
        raise ConfigError(f"optim.step_epochs must be positive, got {optim.step_epochs}")
    since = epoch
    if optim.restart_epoch > 0 and epoch >= optim.restart_epoch:
        since = epoch - optim.restart_epoch
    return optim.lr * 0.1 ** (since // optim.step_epochs)


def warmup_exponential(
    optim: OptimConfig, epochs: int, global_step: int, steps_per_epoch: int
) -> float:
    """WeSpeaker-style SGD schedule, per step.

    Linear warm-up from ``lr / warmup_steps`` to ``lr`` over ``warmup_epochs``,
    then exponential decay from ``lr`` towards ``final_lr``, reached at the end
    of the last epoch.
    """
    if optim.final_lr <= 0 or optim.lr <= 0:
        raise ConfigError("optim.lr and optim.final_lr must be positive for the exp scheduler")
    warmup = optim.warmup_epochs * steps_per_epoch
    total = max(epochs * steps_per_epoch, warmup + 1)
    if global_step < warmup:
        return optim.lr * (global_step + 1) / warmup
    progress = (global_step - warmup) / (total - warmup)  # in [0, 1)
    return optim.lr * math.exp(progress * math.log(optim.final_lr / optim.lr))


def margin_at(head: HeadConfig, epoch: int) -> float:
    """Margin for ``epoch`` (0-based): 0 before the ramp, linear up to ``head.margin``.

    Epoch ``margin_ramp_start_epoch`` has margin 0 and ``margin_ramp_end_epoch``
    the full margin; with ``margin_ramp_end_epoch == 0`` the margin is constant.
    A plain ``softmax`` head has no margin (0).
    """
    if head.name == "softmax":
        return 0.0
    start, end = head.margin_ramp_start_epoch, head.margin_ramp_end_epoch
    if end <= 0:
        return head.margin
    if end <= start:
        raise ConfigError(
            f"head.margin_ramp_end_epoch ({end}) must be after margin_ramp_start_epoch ({start})"
        )
    if epoch <= start:
        return 0.0
    if epoch >= end:
        return head.margin
    return head.margin * (epoch - start) / (end - start)
