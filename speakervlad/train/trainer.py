"""The training loop: SpeakerNet + margin head, cross-entropy, exact resume.

Everything that decides what a step computes is either a pure function of the
position (learning rate, margin, crops, augmentation, SpecAugment masks: all
seeded from ``(seed, epoch, index/step)``) or saved in the checkpoint (weights,
optimiser, grad scaler, RNG states, sampler position, epoch statistics). So a
run stopped anywhere (end of epoch, SIGINT/SIGTERM, wall-clock budget) and
resumed with ``resume=True`` ends with the weights of an uninterrupted run.

>>> # trainer = Trainer(config, "exp/run1", utterances); trainer.fit()
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..checkpoint import save_checkpoint
from ..config import ExperimentConfig
from ..data.augment import Augmenter, spec_augment
from ..data.dataset import CropDataset
from ..data.lists import SpeakerIndex, Utterance, add_speed_perturbation
from ..data.sampler import SpeakerBalancedSampler
from ..errors import ConfigError
from ..models import build_head, build_model
from . import distributed as ddp
from .budget import StepTimer, epochs_within_budget
from .experiment import MetricsLog, checkpoint_path, prune_checkpoints
from .optimizers import autocast_dtype, build_optimizer
from .schedules import learning_rate, margin_at
from .state import (
    capture_rng,
    load_training_checkpoint,
    seed_everything,
    stream_seed,
    worker_init,
)

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """Where a call to :meth:`Trainer.fit` stopped."""

    epochs_done: int
    step: int  # steps into the next epoch (0 at an epoch boundary)
    finished: bool  # all configured epochs are done
    stopped_by: str = ""  # "", "signal", "budget" or "max_steps"
    checkpoint: Path | None = None


@dataclass
class _EpochStats:
    loss_sum: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    seconds: float = 0.0
    lr: float = 0.0


class ModelWithHead(nn.Module):
    """The embedding network and its classification head, as one module for DDP."""

    def __init__(self, model: nn.Module, head: nn.Module, trunk_dtype: torch.dtype | None = None):
        super().__init__()
        self.model, self.head, self.trunk_dtype = model, head, trunk_dtype

    def forward(self, waves: Tensor, labels: Tensor, augment: Callable | None = None) -> Tensor:
        embeddings = self.model(waves, augment_features=augment, trunk_dtype=self.trunk_dtype)  # (B, E)
        return self.head(embeddings, labels)  # (B, C)


class Trainer:
    """Train ``config`` on ``utterances``, writing checkpoints and metrics to ``exp_dir``.

    ``validator(model) -> EER`` (see :mod:`speakervlad.train.validation`) runs
    every ``config.train.validate_every`` epochs on the main process.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        exp_dir: str | Path,
        utterances: Sequence[Utterance],
        *,
        env: ddp.DistEnv | None = None,
        validator: Callable[[nn.Module], float] | None = None,
        provenance: dict | None = None,
    ):
        self.config, self.exp_dir = config, Path(exp_dir)
        self.env = env or ddp.DistEnv()
        self.device = torch.device(self.env.device)
        self.validator, self.provenance = validator, dict(provenance or {})
        seed_everything(config.train.seed)  # identical initial weights on every rank
        utts = add_speed_perturbation(utterances) if config.augment.speed_perturb else list(utterances)
        self.speakers = SpeakerIndex.from_utterances(utts)
        self.model = build_model(config.model).to(self.device)
        if config.train.zero_init_residual:
            self.model.trunk.zero_init_residual_()
        self.head = build_head(config.head, self.model.embedding_dim, len(self.speakers)).to(self.device)
        self.autocast_dtype = autocast_dtype(config.optim.precision, self.device)  # for the trunk
        logger.info("optim.precision=%s: the trunk computes in %s", config.optim.precision,
                    "fp32" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch."))
        self.net = ModelWithHead(self.model, self.head, self.autocast_dtype)
        self.wrapped = ddp.wrap(self.net, self.env)
        self.optimizer = build_optimizer(config.optim, self.net.parameters())
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        augmenter = None
        if config.augment.noise_prob > 0 or config.augment.reverb_prob > 0:
            augmenter = Augmenter(config.augment, self.model.sample_rate)
        self.dataset = CropDataset(
            utts, self.speakers, config.data.crop_seconds, sample_rate=self.model.sample_rate,
            reverse_concat=config.data.reverse_concat, augmenter=augmenter, seed=config.train.seed,
        )
        self.sampler = SpeakerBalancedSampler(
            self.speakers.labels(utts), utterances_per_speaker=config.data.utterances_per_speaker,
            seed=config.train.seed, rank=self.env.rank, world_size=self.env.world_size,
            shuffle=True, balanced=config.data.speaker_balanced,
        )
        self.batch_size = config.data.batch_size
        self.sampler.set_epoch(0)
        self.steps_per_epoch = len(self.sampler) // self.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"an epoch holds {len(self.sampler)} crops per process, fewer than data.batch_size="
                f"{self.batch_size}; lower data.batch_size or add data"
            )
        self.metrics = MetricsLog(self.exp_dir / "metrics.csv")
        self._stop_signal = False
        self._started = time.monotonic()
        self._steps_run = 0
        self._max_steps: int | None = None
        self._position = (0, 0)  # (epoch, steps done in it)
        #: epochs planned to fit the time budget (budget.py), once made; None: train.epochs
        self.budget_plan: int | None = None
        self._step_timer = StepTimer()

    # ------------------------------------------------------------------ public
    @property
    def planned_epochs(self) -> int:
        """The epochs this run trains: ``train.epochs``, or fewer planned to fit the budget."""
        return self.config.train.epochs if self.budget_plan is None else self.budget_plan

    def fit(self, resume: bool = False, max_steps: int | None = None) -> TrainResult:
        """Train until all epochs are done, a signal, the time budget or ``max_steps``."""
        cfg = self.config.train
        epoch, step, stats = 0, 0, _EpochStats()
        if resume:
            resumed = load_training_checkpoint(
                self.exp_dir, model=self.model, head=self.head, optimizer=self.optimizer, scaler=self.scaler,
                speakers=self.speakers.speakers, world_size=self.env.world_size, batch_size=self.batch_size,
            )
            epoch, step = resumed.epoch, resumed.step
            stats = _EpochStats(**resumed.epoch_stats) if step else stats
            self.budget_plan = resumed.budget_plan if cfg.fit_to_budget else None
        if self.env.is_main:
            self.exp_dir.mkdir(parents=True, exist_ok=True)
            self.speakers.save(self.exp_dir / "speakers.txt")
            self.metrics.truncate(epoch)
        self._started = time.monotonic()
        self._steps_run = 0
        self._max_steps = max_steps
        previous = self._install_signal_handlers()
        path = None
        try:
            while epoch < self.planned_epochs:
                stopped_by = self._train_epoch(epoch, step, stats)
                if stopped_by and self._position[1] < self.steps_per_epoch:
                    path = self._save(epoch, self._position[1], stats) if self.env.is_main else None
                    ddp.barrier(self.env)
                    return TrainResult(epoch, self._position[1], False, stopped_by, path)
                path = self._end_epoch(epoch, stats)
                epoch, step, stats = epoch + 1, 0, _EpochStats()
                if stopped_by:
                    return TrainResult(epoch, 0, epoch >= self.planned_epochs, stopped_by, path)
            return TrainResult(epoch, 0, True, "", path)
        finally:
            self._restore_signal_handlers(previous)

    # ---------------------------------------------------------------- one epoch
    def _train_epoch(self, epoch: int, start: int, stats: _EpochStats) -> str:
        """Run the steps of ``epoch`` from ``start``; the reason it stopped early, or ''."""
        cfg = self.config
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        self.sampler.set_start(start * self.batch_size)
        self.head.margin = margin_at(cfg.head, epoch)
        loader = DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=self.sampler, drop_last=True,
            num_workers=cfg.data.num_workers, worker_init_fn=worker_init,
            generator=torch.Generator().manual_seed(stream_seed(cfg.train.seed, epoch, self.env.rank)),
            pin_memory=self.device.type == "cuda",
        )
        self.net.train()
        progress = tqdm(
            total=self.steps_per_epoch, initial=start, desc=f"epoch {epoch + 1}/{self.planned_epochs}",
            unit="step", disable=not self.env.is_main, dynamic_ncols=True, leave=False,
        )
        self._position = (epoch, start)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0
        tick = last_step_end = time.monotonic()
        stopped_by = ""
        for step, (waves, labels) in enumerate(loader, start=start):
            lr = learning_rate(cfg.optim, self.planned_epochs, epoch, step, self.steps_per_epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss, hits = self._step(waves, labels, epoch, step)
            loss_sum += loss * len(labels)
            correct += hits
            seen += len(labels)
            self._steps_run += 1
            self._position = (epoch, step + 1)
            if self._plan_pending():
                now = time.monotonic()
                self._step_timer.add(now - last_step_end)
                last_step_end = now
                self._plan_if_timed(epoch, step + 1)
            stats.lr = lr
            progress.update(1)
            last = step + 1 == self.steps_per_epoch
            if self.env.is_main and ((step + 1) % max(1, cfg.train.log_every) == 0 or last):
                rate = seen * self.env.world_size / max(time.monotonic() - tick, 1e-9)
                progress.set_postfix(  # running means of this process since the epoch (re)started
                    loss=f"{loss_sum.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}",
                    lr=f"{lr:.2e}", samples_s=f"{rate:.1f}",
                )
            stopped_by = ddp.any_process_reason(self._stop_reason(), self.env)
            if stopped_by or last:
                break
        progress.close()
        # statistics over all processes, accumulated across resumes
        totals = ddp.all_reduce_sum(
            torch.stack([loss_sum, correct, torch.tensor(float(seen), device=self.device)]), self.env
        )
        stats.loss_sum += float(totals[0])
        stats.correct += float(totals[1])
        stats.count += float(totals[2])
        stats.seconds += time.monotonic() - tick
        return stopped_by

    def _step(self, waves: Tensor, labels: Tensor, epoch: int, step: int) -> tuple[Tensor, Tensor]:
        """One optimiser step; returns (mean loss, number of correct argmax), detached."""
        waves = waves.to(self.device, non_blocking=True)  # (B, N)
        labels = labels.to(self.device, non_blocking=True)  # (B,)
        augment = self._spec_augment(epoch, step)
        logits = self.wrapped(waves, labels, augment)  # (B, C), the trunk at optim.precision
        loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.net.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), (logits.detach().argmax(dim=1) == labels).sum()

    def _spec_augment(self, epoch: int, step: int) -> Callable | None:
        """SpecAugment on each example with probability ``specaug_prob``, seeded by position."""
        aug = self.config.augment
        if aug.specaug_prob <= 0:
            return None
        seed = stream_seed(self.config.train.seed, epoch, step, self.env.rank)

        def apply(feats: Tensor, frame_lengths: Tensor) -> Tensor:  # feats (B, F, T)
            generator = torch.Generator(device=feats.device).manual_seed(seed)
            return spec_augment(feats, frame_lengths, aug.specaug_freq_mask, aug.specaug_time_mask,
                                generator, prob=aug.specaug_prob)

        return apply

    # ---------------------------------------------------------------- epoch end
    def _end_epoch(self, epoch: int, stats: _EpochStats) -> Path | None:
        """Sync BN statistics, validate, log a metrics row and save ``epoch_NNN.pt``."""
        ddp.sync_buffers(self.net, self.env)
        cfg = self.config.train
        val_eer = ""
        due = cfg.validate_every > 0 and (epoch + 1) % cfg.validate_every == 0
        if self.env.is_main and self.validator is not None and due:
            val_eer = float(self.validator(self.model))  # leaves eval mode; the next epoch sets train()
        row = {
            "epoch": epoch + 1,
            "loss": stats.loss_sum / max(stats.count, 1.0),
            "acc": stats.correct / max(stats.count, 1.0),
            "lr": stats.lr,
            "margin": float(self.head.margin),
            "samples_per_s": stats.count / max(stats.seconds, 1e-9),
            "seconds": stats.seconds,
            "val_eer": val_eer,
        }
        path = None
        if self.env.is_main:
            self.metrics.append(row)
            eer_text = f", validation EER {val_eer:.2%}" if val_eer != "" else ""
            logger.info(
                "epoch %d/%d: loss %.4f, accuracy %.3f, lr %.3g, margin %.3f, %.1f samples/s, %.0f s%s",
                epoch + 1, self.planned_epochs, row["loss"], row["acc"], row["lr"], row["margin"],
                row["samples_per_s"], row["seconds"], eer_text,
            )
            path = self._save(epoch + 1, 0, _EpochStats())
            prune_checkpoints(self.exp_dir, cfg.keep_checkpoints)
        ddp.barrier(self.env)
        return path

    def _save(self, epochs_done: int, step: int, stats: _EpochStats) -> Path:
        """Atomically write the checkpoint of this position (main process only)."""
        path = checkpoint_path(self.exp_dir, epochs_done, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "epochs_done": epochs_done,
            "step": step,
            "steps_per_epoch": self.steps_per_epoch,
            "batch_size": self.batch_size,
            "world_size": self.env.world_size,
            "margin": float(self.head.margin),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng(),
            "sampler": {"epoch": epochs_done, "start": step * self.batch_size},
            "speakers": list(self.speakers.speakers),
            "epoch_stats": asdict(stats),
            "budget_plan": self.budget_plan,
        }
        provenance = {**self.provenance, "epochs_done": epochs_done, "step": step}
        save_checkpoint(path, self.model, self.config, head=self.head, provenance=provenance,
                        training_state=state)
        logger.info("saved %s", path)
        return path

    # ---------------------------------------------------------------- the plan
    def _plan_pending(self) -> bool:
        train = self.config.train
        return train.fit_to_budget and train.max_minutes > 0 and self.budget_plan is None

    def _plan_if_timed(self, epoch: int, steps_done: int) -> None:
        """Once the first steps are timed, plan the epochs that fit in ``train.max_minutes``."""
        if not self._step_timer.ready:
            return
        timing = torch.tensor([self._step_timer.step_seconds(), self._step_timer.first_step_overhead(),
                               time.monotonic() - self._started])
        step_seconds, overhead, elapsed = ddp.all_reduce_max(timing, self.env).tolist()  # the slowest rank
        self.budget_plan = epochs_within_budget(
            remaining_seconds=self.config.train.max_minutes * 60 - elapsed, epoch=epoch, step=steps_done,
            steps_per_epoch=self.steps_per_epoch, step_seconds=step_seconds, epoch_overhead=overhead,
            max_epochs=self.config.train.epochs,
        )
        logger.info("planned %d epochs (%d steps) within the %g-minute budget: %.2f s/step, %.1f s more per "
                    "epoch", self.planned_epochs, self.planned_epochs * self.steps_per_epoch,
                    self.config.train.max_minutes, step_seconds, overhead)

    # -------------------------------------------------------------- stopping
    def _stop_reason(self) -> str:
        if self._stop_signal:
            return "signal"
        budget = self.config.train.max_minutes
        if budget > 0 and time.monotonic() - self._started >= budget * 60:
            return "budget"
        if self._max_steps is not None and self._steps_run >= self._max_steps:
            return "max_steps"
        return ""

    def _install_signal_handlers(self) -> dict:
        """SIGINT/SIGTERM ask for a checkpoint at the next step; a second SIGINT aborts."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: object) -> None:
            logger.warning("%s: saving a checkpoint after this step, then stopping",
                           signal.Signals(signum).name)
            self._stop_signal = True
            signal.signal(signal.SIGINT, signal.default_int_handler)

        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)
