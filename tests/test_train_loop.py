"""Training loop: exact resume (epoch boundary, mid-epoch, signal), averaging, 2-process DDP."""
import os
import signal
import socket

import pytest
import torch
import torch.multiprocessing as mp
from conftest import tone_corpus

from speakervlad.checkpoint import load_checkpoint
from speakervlad.config import ExperimentConfig, apply_overrides
from speakervlad.data.lists import build_list
from speakervlad.errors import ConfigError
from speakervlad.train import distributed as ddp
from speakervlad.train.average import average_last
from speakervlad.train.experiment import MetricsLog, epoch_checkpoints
from speakervlad.train.trainer import Trainer

TINY = [
    "model.trunk=resnet34", "model.trunk_width=4", "model.frontend.name=fbank",
    "model.frontend.normalize=mean", "model.pooling.name=tstp", "model.embedding_dim=16",
    "data.crop_seconds=0.5", "data.batch_size=8", "data.num_workers=0", "train.epochs=2",
    # every piece of state a resume must restore: momentum, per-step warm-up, margin ramp, SpecAugment
    "optim.optimizer=sgd", "optim.lr=0.05", "optim.scheduler=exp", "optim.warmup_epochs=1",
    "optim.grad_clip=5.0", "head.name=aam_softmax", "head.margin_ramp_start_epoch=0",
    "head.margin_ramp_end_epoch=2", "augment.specaug_prob=0.5",
]


def tiny_config(*extra: str) -> ExperimentConfig:
    return apply_overrides(ExperimentConfig(), [*TINY, *extra])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """4 speakers x 4 one-second files: a harmonic tone per speaker plus noise."""
    root = tone_corpus(tmp_path_factory.mktemp("corpus"), seed=0)
    return build_list(root)


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """An uninterrupted 2-epoch run (2 steps per epoch)."""
    exp = tmp_path_factory.mktemp("reference")
    result = Trainer(tiny_config(), exp, corpus).fit()
    assert result.finished and result.epochs_done == 2
    return exp


def final_weights(exp):
    ckpt = load_checkpoint(exp / "checkpoints" / "epoch_002.pt")
    return {**ckpt.model_state, **{f"head.{k}": v for k, v in ckpt.head_state.items()}}


def assert_same_run(exp, reference):
    got, want = final_weights(exp), final_weights(reference)
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6, msg=key)
    # the metrics rows (loss, accuracy, lr, margin) match too
    columns = ("epoch", "loss", "acc", "lr", "margin")
    rows = [[r[c] for c in columns] for r in MetricsLog(exp / "metrics.csv").rows()]
    assert rows == [[r[c] for c in columns] for r in MetricsLog(reference / "metrics.csv").rows()]


def test_reference_run_outputs(reference):
    rows = MetricsLog(reference / "metrics.csv").rows()
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert [float(r["margin"]) for r in rows] == [0.0, pytest.approx(0.35 / 2)]
    assert float(rows[0]["lr"]) == pytest.approx(0.05)  # last warm-up step reaches lr
    assert all(float(r["samples_per_s"]) > 0 and r["val_eer"] == "" for r in rows)
    state = load_checkpoint(reference / "checkpoints" / "epoch_002.pt").training_state
    assert (state["epochs_done"], state["step"], state["steps_per_epoch"]) == (2, 0, 2)
    assert state["speakers"] == ["spk0", "spk1", "spk2", "spk3"]
    assert (reference / "speakers.txt").read_text().split() == state["speakers"]


def test_resume_at_epoch_boundary_is_exact(corpus, reference, tmp_path):
    first = Trainer(tiny_config(), tmp_path, corpus).fit(max_steps=2)
    assert (first.epochs_done, first.step, first.stopped_by) == (1, 0, "max_steps")
    assert first.checkpoint.name == "epoch_001.pt"
    assert Trainer(tiny_config(), tmp_path, corpus).fit(resume=True).finished
    assert_same_run(tmp_path, reference)


def test_resume_mid_epoch_with_workers_is_exact(corpus, reference, tmp_path):
    config = tiny_config("data.num_workers=2")
    first = Trainer(config, tmp_path, corpus).fit(max_steps=3)
    assert (first.epochs_done, first.step, first.checkpoint.name) == (1, 1, "epoch_001_step_000001.pt")
    assert Trainer(config, tmp_path, corpus).fit(resume=True).finished
    assert_same_run(tmp_path, reference)
    # the mid-epoch checkpoint is superseded by the end-of-epoch one
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch_001.pt", "epoch_002.pt"]


def test_sigint_saves_the_position_and_resume_is_exact(corpus, reference, tmp_path, monkeypatch):
    calls = []
    original = Trainer._step

    def step_then_interrupt(self, *args):
        out = original(self, *args)
        calls.append(1)
        if len(calls) == 3:  # first step of the second epoch
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(Trainer, "_step", step_then_interrupt)
    before = signal.getsignal(signal.SIGINT)
    result = Trainer(tiny_config(), tmp_path, corpus).fit()
    assert (result.stopped_by, result.epochs_done, result.step) == ("signal", 1, 1)
    assert signal.getsignal(signal.SIGINT) is before
    monkeypatch.setattr(Trainer, "_step", original)
    assert Trainer(tiny_config(), tmp_path, corpus).fit(resume=True).finished
    assert_same_run(tmp_path, reference)


def weights_of(path):
    ckpt = load_checkpoint(path)
    return {**ckpt.model_state, **{f"head.{k}": v for k, v in ckpt.head_state.items()}}


def test_repeated_draws_get_different_crops_and_resume_stays_exact(corpus, tmp_path):
    config = tiny_config("data.utterances_per_speaker=8", "train.epochs=1")  # every recording drawn twice
    trainer = Trainer(config, tmp_path / "whole", corpus)
    trainer.dataset.set_epoch(0)
    trainer.sampler.set_epoch(0)
    crops: dict[int, list[torch.Tensor]] = {}
    for index, number in trainer.sampler:
        crops.setdefault(index, []).append(trainer.dataset[(index, number)][0])
    assert sorted(len(c) for c in crops.values()) == [2] * 16
    assert all(not torch.equal(a, b) for a, b in crops.values())
    assert trainer.fit().finished
    first = Trainer(config, tmp_path / "resumed", corpus).fit(max_steps=3)
    assert (first.epochs_done, first.step) == (0, 3)
    assert Trainer(config, tmp_path / "resumed", corpus).fit(resume=True).finished
    got, want = (weights_of(tmp_path / run / "checkpoints" / "epoch_001.pt") for run in ("resumed", "whole"))
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6, msg=key)


def test_fit_to_budget_trains_the_planned_epochs_and_resume_keeps_the_plan(corpus, tmp_path, monkeypatch):
    import speakervlad.train.trainer as trainer_module

    plans = []

    def plan(**kwargs):
        plans.append(kwargs)
        return 5

    monkeypatch.setattr(trainer_module, "epochs_within_budget", plan)
    config = tiny_config("train.epochs=50", "train.max_minutes=30", "train.fit_to_budget=true",
                         "optim.warmup_epochs=0", "optim.final_lr=0.0005")
    first = Trainer(config, tmp_path, corpus).fit(max_steps=8)  # the plan is made after 7 steps
    assert len(plans) == 1 and plans[0]["max_epochs"] == 50 and plans[0]["steps_per_epoch"] == 2
    assert (plans[0]["epoch"], plans[0]["step"]) == (3, 1)  # 7 steps of 2-step epochs
    assert load_checkpoint(first.checkpoint).training_state["budget_plan"] == 5
    result = Trainer(config, tmp_path, corpus).fit(resume=True)
    assert len(plans) == 1  # not planned again
    assert result.finished and result.epochs_done == 5
    rows = MetricsLog(tmp_path / "metrics.csv").rows()
    assert len(rows) == 5
    # the exp schedule ran over the 5 planned epochs: its last step is near final_lr, not near lr
    assert float(rows[-1]["lr"]) == pytest.approx(0.05 * (0.0005 / 0.05) ** (9 / 10))


def test_without_fit_to_budget_no_plan_is_made(corpus, tmp_path):
    result = Trainer(tiny_config("train.max_minutes=30"), tmp_path, corpus).fit()
    assert result.finished and result.epochs_done == 2
    assert load_checkpoint(result.checkpoint).training_state["budget_plan"] is None


def test_time_budget_checkpoints_and_stops(corpus, tmp_path):
    result = Trainer(tiny_config("train.max_minutes=0.000001"), tmp_path, corpus).fit()
    assert (result.stopped_by, result.epochs_done, result.step) == ("budget", 0, 1)
    state = load_checkpoint(result.checkpoint).training_state
    assert (state["epochs_done"], state["step"], state["sampler"]["start"]) == (0, 1, 8)


def test_fp16_on_cpu_is_refused_with_advice(corpus, tmp_path):
    with pytest.raises(ConfigError, match="optim.precision=bf16"):
        Trainer(tiny_config("optim.precision=fp16"), tmp_path, corpus)


def test_average_last_is_the_mean_of_the_weights(reference, tmp_path):
    paths = epoch_checkpoints(reference)[-2:]
    states = [load_checkpoint(p).model_state for p in paths]
    out = average_last(reference, 2, tmp_path / "avg.pt")
    averaged = load_checkpoint(out)
    for key, value in averaged.model_state.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (states[0][key] + states[1][key]) / 2)
        else:  # BatchNorm num_batches_tracked: from the last checkpoint
            assert torch.equal(value, states[1][key])
    assert averaged.training_state is None
    assert averaged.provenance["averaged_from"] == ["epoch_001.pt", "epoch_002.pt"]
    assert averaged.config == load_checkpoint(paths[-1]).config


def _ddp_rank(rank: int, port: int, corpus, exp: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    env = ddp.init_distributed("cpu")
    try:
        trainer = Trainer(tiny_config("data.batch_size=4"), exp, corpus, env=env)
        trainer.fit()
        torch.save({k: v.clone() for k, v in trainer.net.state_dict().items()}, f"{out}/rank{rank}.pt")
    finally:
        ddp.cleanup(env)


def test_two_process_gloo_ranks_end_identical(corpus, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_ddp_rank, args=(port, corpus, str(tmp_path / "exp"), str(tmp_path)), nprocs=2)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    saved = load_checkpoint(tmp_path / "exp" / "checkpoints" / "epoch_002.pt")
    assert saved.training_state["world_size"] == 2
    assert torch.equal(saved.model_state["embedding.0.weight"], rank0["model.embedding.0.weight"])


def test_bf16_trunk_run_resumes_exactly(corpus, reference, tmp_path):
    """optim.precision=bf16 (the trunk under autocast) keeps resume exact, and does compute in bf16."""
    whole = Trainer(tiny_config("optim.precision=bf16"), tmp_path / "whole", corpus)
    whole.fit()
    first = Trainer(tiny_config("optim.precision=bf16"), tmp_path / "resumed", corpus)
    assert first.fit(max_steps=3).step == 1
    Trainer(tiny_config("optim.precision=bf16"), tmp_path / "resumed", corpus).fit(resume=True)
    assert_same_run(tmp_path / "resumed", tmp_path / "whole")
    bf16, fp32 = final_weights(tmp_path / "whole"), final_weights(reference)
    assert not torch.allclose(bf16["embedding.0.weight"], fp32["embedding.0.weight"], atol=1e-4)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(native, monkeypatch):
    from speakervlad.train.optimizers import autocast_dtype

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert autocast_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if native else None)
