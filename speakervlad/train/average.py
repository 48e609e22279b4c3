"""Average the weights of several checkpoints (usually the last N epochs).

Floating-point tensors (weights, BatchNorm running mean and variance) are
averaged; integer tensors (BatchNorm ``num_batches_tracked``) are taken from the
last checkpoint. The config, calibration and provenance of the last checkpoint
are kept; the result holds no training state (it is a model, not a position to
resume from).

>>> # average_checkpoints(epoch_checkpoints("exp/run1")[-5:], "exp/run1/avg_last5.pt")
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ..checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ..config import to_dict
from ..errors import CheckpointError
from ..models import build_head
from .experiment import epoch_checkpoints

logger = logging.getLogger(__name__)


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Key-wise mean of float tensors; other tensors from the last state."""
    keys = list(states[-1])
    for number, state in enumerate(states):
        if list(state) != keys or any(state[k].shape != states[-1][k].shape for k in keys):
            raise CheckpointError(f"checkpoint {number + 1} of {len(states)} holds other weights "
                                  "(another model); average checkpoints of one run only")
    averaged = {}
    for key in keys:
        last = states[-1][key]
        if last.is_floating_point():
            total = torch.stack([s[key].to(torch.float64) for s in states]).sum(0)
            averaged[key] = (total / len(states)).to(last.dtype)
        else:
            averaged[key] = last.clone()
    return averaged


def average_checkpoints(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Write the average of ``paths`` (same model config) to ``out``; returns ``out``."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    checkpoints = [load_checkpoint(p) for p in paths]
    last: Checkpoint = checkpoints[-1]
    for path, ckpt in zip(paths, checkpoints):
        if to_dict(ckpt.config.model) != to_dict(last.config.model):
            raise CheckpointError(f"{path}: its model config differs from {paths[-1]}'s; "
                                  "average checkpoints of one run only")
    net = last.build_model()
    net.load_state_dict(average_states([c.model_state for c in checkpoints]))
    head = None
    if all(c.head_state is not None for c in checkpoints):
        head_state = average_states([c.head_state for c in checkpoints])
        weight = next(v for k, v in head_state.items() if k.endswith("weight"))
        head = build_head(last.config.head, net.embedding_dim, weight.shape[0])
        head.load_state_dict(head_state)
    provenance = {**last.provenance, "averaged_from": [Path(p).name for p in paths]}
    provenance.pop("created", None)
    logger.info("averaging %d checkpoints into %s", len(paths), out)
    return save_checkpoint(out, net, last.config, head=head, calibration=last.calibration,
                           provenance=provenance)


def average_last(exp_dir: str | Path, last: int, out: str | Path | None = None) -> Path:
    """Average the last ``last`` end-of-epoch checkpoints of an experiment.

    The default output is ``EXP/avg_last{N}.pt``.
    """
    found = epoch_checkpoints(Path(exp_dir))
    if last <= 0:
        raise CheckpointError(f"--last must be at least 1, got {last}")
    if len(found) < last:
        raise CheckpointError(
            f"{exp_dir} has {len(found)} end-of-epoch checkpoint(s), fewer than --last {last}; "
            "average fewer (train.keep_checkpoints limits how many are kept)"
        )
    return average_checkpoints(found[-last:], out or Path(exp_dir) / f"avg_last{last}.pt")
