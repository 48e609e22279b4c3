"""Training state that makes a resume exact: seeds, RNG states, restoring a checkpoint.

RNG states are stored as tensors and plain numbers so checkpoints load with
``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import logging
import random
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_checkpoint, load_weights
from ..errors import CheckpointError
from .experiment import latest_checkpoint

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def stream_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (seed, epoch, step, rank, ...)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def worker_init(worker_id: int) -> None:
    """DataLoader worker: seed NumPy/Python from the worker's torch seed; leave Ctrl-C to the parent.

    The torch seed of a worker derives from the loader's generator, which the
    trainer seeds from (seed, epoch, rank), so workers are reproducible.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def capture_rng() -> dict:
    """The global RNG states of torch (CPU and CUDA), NumPy and Python."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Undo :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["gauss"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Resumed:
    """Where a resumed run continues."""

    epoch: int  # 0-based epoch to continue
    step: int  # steps already done in it
    epoch_stats: dict  # that epoch's statistics so far
    budget_plan: int | None  # epochs planned to fit the time budget, if a plan was made


def load_training_checkpoint(
    exp_dir: Path, *, model: nn.Module, head: nn.Module, optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler, speakers: Sequence[str], world_size: int, batch_size: int,
) -> Resumed:
    """Restore the latest checkpoint of ``exp_dir`` into these training objects (and the global RNGs).

    Refuses, saying what to do, a checkpoint without training state, one trained on
    other speakers, and a mid-epoch one with another process count or batch size.
    """
    path = latest_checkpoint(exp_dir)
    if path is None:
        raise CheckpointError(
            f"nothing to resume: {exp_dir}/checkpoints holds no epoch_*.pt; start without --resume"
        )
    ckpt = load_checkpoint(path)
    state = ckpt.training_state
    if not state:
        raise CheckpointError(f"{path}: holds no training state (an exported or averaged model?)")
    if state["speakers"] != list(speakers):
        raise CheckpointError(
            f"{path}: trained on {len(state['speakers'])} speakers, the data now has "
            f"{len(speakers)} (or other ones); resume with the training list in the experiment "
            "folder (train.tsv)"
        )
    if state["step"] and (state["world_size"], state["batch_size"]) != (world_size, batch_size):
        raise CheckpointError(
            f"{path}: stopped mid-epoch with {state['world_size']} process(es) x batch "
            f"{state['batch_size']}; resume with the same number of processes and batch size"
        )
    if state["world_size"] != world_size:
        logger.warning("resuming a %d-process run with %d processes: not bit-exact",
                       state["world_size"], world_size)
    try:
        load_weights(model, ckpt.model_state)
        head.load_state_dict(ckpt.head_state)
    except (CheckpointError, RuntimeError) as err:
        raise CheckpointError(f"{path}: {err}") from None
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"])
    logger.info("resuming from %s (%d epochs + %d steps done)", path, state["epochs_done"], state["step"])
    return Resumed(state["epochs_done"], state["step"], state["epoch_stats"], state.get("budget_plan"))
