"""What a model is: parameters by part, compute per second of audio, input and output."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..checkpoint import load_checkpoint
from ..config import ExperimentConfig, load_config
from . import build_head, build_model, parameter_counts
from .speaker_net import SpeakerNet


def load_config_or_checkpoint(source: str | Path) -> tuple[ExperimentConfig, SpeakerNet, dict | None]:
    """(config, model, checkpoint-head-state) from a config name/YAML or a checkpoint file."""
    path = Path(source)
    if path.is_file() and path.suffix not in (".yaml", ".yml"):
        checkpoint = load_checkpoint(path)
        return checkpoint.config, checkpoint.build_model(), checkpoint.head_state
    cfg = load_config(source)
    return cfg, build_model(cfg.model).eval(), None


def gflops_per_second(net: SpeakerNet, seconds: float = 10.0) -> float:
    """Forward GFLOPs per second of audio (multiply-add = 2 FLOPs), measured on ``seconds`` of noise."""
    wave = torch.randn(1, int(seconds * net.sample_rate)) * 0.1
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        net(wave)
    return counter.get_total_flops() / seconds / 1e9


def describe(source: str | Path, num_speakers: int = 5994) -> dict:
    """A JSON-able description of a config or checkpoint."""
    cfg, net, head_state = load_config_or_checkpoint(source)
    parts = parameter_counts(net)
    if head_state is not None:
        parts["head"] = sum(t.numel() for t in head_state.values())
        head_note = "from the checkpoint"
    else:
        parts["head"] = sum(p.numel() for p in build_head(cfg.head, net.embedding_dim, num_speakers).parameters())
        head_note = f"for {num_speakers} training speakers"
    fe = cfg.model.frontend
    return {
        "source": str(source),
        "parameters": parts,
        "parameters_without_head": sum(v for k, v in parts.items() if k != "head"),
        "head": f"{cfg.head.name} ({head_note})",
        "gflops_per_second_of_audio": round(gflops_per_second(net), 3),
        "embedding_dim": net.embedding_dim,
        "input": f"{fe.name}, {net.frontend.num_bins} bins, {fe.win_length}/{fe.hop_length} samples "
        f"window/hop at {fe.sample_rate} Hz, normalize={fe.normalize}",
        "trunk": cfg.model.trunk,
        "pooling": cfg.model.pooling.name,
        "min_seconds": round(net.min_seconds, 4),
    }
