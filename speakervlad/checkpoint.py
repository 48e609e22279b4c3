"""Self-describing checkpoints: one file with everything needed to use a model.

A checkpoint is a dict saved with ``torch.save`` and loaded with
``torch.load(weights_only=True)``::

    format          "speakervlad-checkpoint"
    format_version  2 (format 1, before ``model.embedding_norm``, still loads)
    config          the resolved ExperimentConfig as nested dicts
    model           SpeakerNet state dict
    head            margin-head state dict, or None
    calibration     score -> LLR calibration (dict), or None
    provenance      training data, steps, date, package and torch versions
    training_state  optimiser, scheduler, RNG and sampler state for --resume, or None

Saving writes a temporary file in the same folder and renames it into place, so
a process killed mid-write never leaves a broken checkpoint.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .config import ExperimentConfig, from_dict, to_dict
from .errors import CheckpointError, ConfigError
from .models.speaker_net import PARTS, SpeakerNet, build_model

FORMAT = "speakervlad-checkpoint"
FORMAT_VERSION = 2
#: older formats that load, each upgraded to the current one by a function of its config dict
READABLE_VERSIONS = (1, 2)

#: which config fields shape each part, for mismatch messages
_PART_FIELDS = {
    "frontend": "model.frontend",
    "trunk": "model.trunk / model.trunk_width / model.frontend (input bins)",
    "pooling": "model.pooling (name, clusters, ghost_clusters, feature_dim, attention_dim)",
    "embedding": "model.embedding_dim / model.embedding_activation / model.embedding_norm",
}


@dataclass
class Checkpoint:
    config: ExperimentConfig
    model_state: dict[str, torch.Tensor]
    head_state: dict[str, torch.Tensor] | None = None
    calibration: dict | None = None
    provenance: dict = field(default_factory=dict)
    training_state: dict | None = None
    format_version: int = FORMAT_VERSION

    def build_model(self, device: str | torch.device = "cpu") -> SpeakerNet:
        """A SpeakerNet in eval mode with this checkpoint's weights."""
        net = build_model(self.config.model)
        load_weights(net, self.model_state)
        return net.to(device).eval()


def save_checkpoint(
    path: str | Path,
    model: SpeakerNet,
    config: ExperimentConfig,
    *,
    head: nn.Module | None = None,
    calibration: dict | None = None,
    provenance: dict | None = None,
    training_state: dict | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    head = getattr(head, "module", head)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": to_dict(config),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "head": None if head is None else {k: v.detach().cpu() for k, v in head.state_dict().items()},
        "calibration": calibration,
        "provenance": {**_default_provenance(), **(provenance or {})},
        "training_state": training_state,
    }
    return _atomic_save(payload, Path(path))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint; raises CheckpointError with the reason when it can't."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a speakervlad checkpoint (no {FORMAT!r} marker)")
    version = payload.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is not supported by speakervlad {__version__} "
            f"(reads formats {', '.join(map(str, READABLE_VERSIONS))}); upgrade speakervlad"
        )
    try:
        config = from_dict(ExperimentConfig, upgrade_config(payload["config"], version),
                           where=f"{path} config")
    except ConfigError as err:
        raise CheckpointError(f"{path}: its config is invalid: {err}") from None
    return Checkpoint(
        config=config,
        model_state=payload["model"],
        head_state=payload.get("head"),
        calibration=payload.get("calibration"),
        provenance=payload.get("provenance") or {},
        training_state=payload.get("training_state"),
        format_version=version,
    )


def upgrade_config(config: dict, version: int) -> dict:
    """The config dict of a format-``version`` checkpoint, in the current format.

    Format 1 predates ``model.embedding_norm``: its embedding layer had no
    normalisation, so an absent key means ``none`` (not today's default).
    """
    if version == 1 and "embedding_norm" not in config.get("model", {}):
        return {**config, "model": {**config.get("model", {}), "embedding_norm": "none"}}
    return config


def load_weights(net: SpeakerNet, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``net``, naming the mismatched part when they don't fit."""
    expected = net.state_dict()
    problems = []
    for key in sorted(set(expected) | set(state)):
        if key not in state:
            problems.append((key, f"missing from the checkpoint (config needs {tuple(expected[key].shape)})"))
        elif key not in expected:
            problems.append((key, f"in the checkpoint {tuple(state[key].shape)} but not in the config's model"))
        elif expected[key].shape != state[key].shape:
            problems.append((key, f"checkpoint has shape {tuple(state[key].shape)}, "
                                  f"config needs {tuple(expected[key].shape)}"))
    if problems:
        by_part: dict[str, list[str]] = {}
        for key, why in problems:
            by_part.setdefault(key.split(".")[0], []).append(f"{key}: {why}")
        order = sorted(by_part, key=lambda part: PARTS.index(part) if part in PARTS else len(PARTS))
        described = "; ".join(
            f"{part} (check {_PART_FIELDS.get(part, 'model')}): {', '.join(by_part[part][:4])}"
            + (f" (+{len(by_part[part]) - 4} more)" if len(by_part[part]) > 4 else "")
            for part in order
        )
        raise CheckpointError(f"the weights do not fit the config's {' and '.join(order)}: {described}")
    net.load_state_dict(state)


def set_calibration(path: str | Path, calibration: dict, out: str | Path | None = None) -> Path:
    """Store ``calibration`` in a checkpoint (in place, or as ``out``)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from None
    load_checkpoint(path)  # validates format
    payload["calibration"] = calibration
    return _atomic_save(payload, Path(out) if out else path)


#: model config fields added after the first release, with the value that reproduces the models
#: made before them; left out of the fingerprint at that value, so those models keep theirs
#: (enrollment stores and embedding caches recognise them after an upgrade)
FIELDS_ADDED_LATER = {("embedding_norm",): "none", ("frontend", "compression"): "none"}


def model_fingerprint(net: SpeakerNet) -> str:
    """A stable hash of the model config and weights (16 hex digits)."""
    config = to_dict(net.config)
    for path, neutral in FIELDS_ADDED_LATER.items():
        *parents, name = path
        section = config
        for key in parents:
            section = section[key]
        if section.get(name) == neutral:
            del section[name]
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for key, value in sorted(net.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _atomic_save(payload: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _default_provenance() -> dict:
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "speakervlad_version": __version__,
        "torch_version": str(torch.__version__),
    }
