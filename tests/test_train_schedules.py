"""Learning-rate and margin schedules: values at key epochs and steps."""
import math

import pytest

from speakervlad.config import HeadConfig, OptimConfig, load_config
from speakervlad.errors import ConfigError
from speakervlad.train.schedules import learning_rate, margin_at


def test_step_decay_divides_by_ten_every_step_epochs():
    cfg = OptimConfig(optimizer="adam", lr=1e-3, scheduler="step", step_epochs=3)
    lrs = [learning_rate(cfg, 10, epoch, 0, 50) for epoch in range(10)]
    assert lrs[:3] == [1e-3] * 3
    assert lrs[3:6] == pytest.approx([1e-4] * 3)
    assert lrs[6:9] == pytest.approx([1e-5] * 3)
    assert lrs[9] == pytest.approx(1e-6)
    # per epoch: every step of an epoch has the same rate
    assert {learning_rate(cfg, 10, 4, s, 50) for s in range(50)} == {lrs[4]}


def test_step_decay_warm_restart_returns_to_the_initial_rate():
    cfg = OptimConfig(lr=1e-3, scheduler="step", step_epochs=2, restart_epoch=5)
    lrs = [learning_rate(cfg, 10, epoch, 0, 7) for epoch in range(10)]
    expected = [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5]
    assert lrs == pytest.approx(expected)


def test_reference_config_schedule():
    cfg = load_config("thin_resnet34_ghostvlad")
    epochs = cfg.train.epochs
    assert learning_rate(cfg.optim, epochs, 0, 0, 100) == pytest.approx(1e-3)
    assert learning_rate(cfg.optim, epochs, 35, 99, 100) == pytest.approx(1e-3)
    assert learning_rate(cfg.optim, epochs, 36, 0, 100) == pytest.approx(1e-4)


def test_warmup_then_exponential_decay_per_step():
    cfg = OptimConfig(optimizer="sgd", lr=0.1, scheduler="exp", warmup_epochs=2, final_lr=1e-4)
    epochs, spe = 12, 10
    lr = [learning_rate(cfg, epochs, g // spe, g % spe, spe) for g in range(epochs * spe)]
    # linear warm-up over 20 steps: lr * (g + 1) / 20
    assert lr[0] == pytest.approx(0.1 / 20)
    assert lr[9] == pytest.approx(0.1 * 10 / 20)
    assert lr[19] == pytest.approx(0.1)
    # then lr * (final/lr) ** progress, progress = (g - 20) / 100
    assert lr[20] == pytest.approx(0.1)
    assert lr[70] == pytest.approx(0.1 * (1e-3) ** 0.5)
    assert lr[-1] == pytest.approx(0.1 * math.exp(99 / 100 * math.log(1e-3)))
    decay = lr[20:]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert min(lr) >= 1e-4


def test_exp_without_warmup_starts_at_lr():
    cfg = OptimConfig(lr=0.05, scheduler="exp", warmup_epochs=0, final_lr=5e-5)
    assert learning_rate(cfg, 4, 0, 0, 10) == pytest.approx(0.05)
    assert learning_rate(cfg, 4, 2, 0, 10) == pytest.approx(0.05 * (1e-3) ** 0.5)


def test_constant_and_unknown_scheduler():
    assert learning_rate(OptimConfig(lr=0.2, scheduler="constant"), 5, 4, 3, 10) == 0.2
    with pytest.raises(ConfigError, match="step, exp, constant"):
        learning_rate(OptimConfig(scheduler="cosine"), 5, 0, 0, 10)


def test_margin_ramp():
    head = HeadConfig(margin=0.2, margin_ramp_start_epoch=20, margin_ramp_end_epoch=40)
    assert margin_at(head, 0) == 0.0
    assert margin_at(head, 20) == 0.0
    assert margin_at(head, 30) == pytest.approx(0.1)
    assert margin_at(head, 39) == pytest.approx(0.19)
    assert margin_at(head, 40) == pytest.approx(0.2)
    assert margin_at(head, 100) == pytest.approx(0.2)


def test_margin_constant_without_ramp_and_bad_ramp():
    assert margin_at(HeadConfig(margin=0.35), 0) == 0.35
    assert margin_at(HeadConfig(name="softmax", margin=0.35), 0) == 0.0  # softmax has no margin
    with pytest.raises(ConfigError, match="after margin_ramp_start_epoch"):
        margin_at(HeadConfig(margin_ramp_start_epoch=5, margin_ramp_end_epoch=5), 3)
