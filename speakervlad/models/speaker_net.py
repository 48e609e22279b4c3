"""SpeakerNet: waveform -> frontend -> trunk -> pooling -> embedding layer.

The embedding layer is a linear map, an optional ReLU and, by default, a
BatchNorm1d (``model.embedding_norm``). A lower precision (``trunk_dtype``:
bf16 autocast in training, as in inference) applies to the trunk only, the
bulk of the compute; features, pooling and embedding stay in fp32.

>>> from speakervlad.config import load_config
>>> net = build_model(load_config("resnet34_tstp").model).eval()
>>> net(torch.randn(2, 16000)).shape
torch.Size([2, 256])
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from ..errors import ConfigError
from .frontends import build_frontend
from .pooling import build_pooling
from .resnet import build_trunk

FeatureAugment = Callable[[Tensor, Tensor], Tensor]

#: the parts of a model, in order, as reported by `speakervlad model info`
PARTS = ("frontend", "trunk", "pooling", "embedding")
EMBEDDING_ACTIVATIONS = ("relu", "none")
EMBEDDING_NORMS = ("batchnorm", "none")


class SpeakerNet(nn.Module):
    """The speaker embedding network; ``forward`` always returns (B, E)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.embedding_activation not in EMBEDDING_ACTIVATIONS:
            raise ConfigError(f"model.embedding_activation must be one of {', '.join(EMBEDDING_ACTIVATIONS)}, "
                              f"got {cfg.embedding_activation!r}")
        if cfg.embedding_norm not in EMBEDDING_NORMS:
            raise ConfigError(f"model.embedding_norm must be one of {', '.join(EMBEDDING_NORMS)}, "
                              f"got {cfg.embedding_norm!r}")
        self.config = cfg
        self.frontend = build_frontend(cfg.frontend)
        self.trunk = build_trunk(cfg, self.frontend.num_bins)
        self.pooling = build_pooling(cfg.pooling, self.trunk.out_dim)
        layers: list[nn.Module] = [nn.Linear(self.pooling.out_dim, cfg.embedding_dim)]
        if cfg.embedding_activation == "relu":
            layers.append(nn.ReLU())
        if cfg.embedding_norm == "batchnorm":
            layers.append(nn.BatchNorm1d(cfg.embedding_dim))
        self.embedding = nn.Sequential(*layers)
        self.embedding_dim = cfg.embedding_dim
        self.sample_rate = cfg.frontend.sample_rate
        self.min_samples = self._shortest_input()

    @property
    def min_seconds(self) -> float:
        return self.min_samples / self.sample_rate

    def forward(
        self, waves: Tensor, lengths: Tensor | None = None, augment_features: FeatureAugment | None = None,
        trunk_dtype: torch.dtype | None = None,
    ) -> Tensor:
        """waves (B, N) at 16 kHz, lengths (B,) in samples -> embeddings (B, E).

        ``augment_features(feats, frame_lengths)`` (training only, e.g.
        SpecAugment) is applied between the frontend and the trunk.
        ``trunk_dtype`` (bf16 or fp16) runs the trunk under autocast; its frames
        return to fp32 before pooling.
        """
        feats, frame_lengths = self.frontend(waves, lengths)  # (B, F, T)
        if augment_features is not None:
            feats = augment_features(feats, frame_lengths)
        if trunk_dtype is None:
            frames, frame_lengths = self.trunk(feats, frame_lengths)  # (B, D, T')
        else:
            with torch.autocast(feats.device.type, dtype=trunk_dtype):
                frames, frame_lengths = self.trunk(feats, frame_lengths)
            frames = frames.float()
        return self.embedding(self.pooling(frames, frame_lengths))

    def _shortest_input(self) -> int:
        """Fewest samples that give the trunk at least one whole output frame."""
        stride, hop = self.trunk.time_stride, self.frontend.hop_length
        samples = (stride - 1) * hop
        while int(self.frontend.frame_lengths(torch.tensor([samples]))) < stride:
            samples += 1
        return samples


def build_model(cfg: ModelConfig) -> SpeakerNet:
    """The SpeakerNet described by ``cfg``."""
    return SpeakerNet(cfg)


def parameter_counts(net: SpeakerNet) -> dict[str, int]:
    """Parameters per part (frontend, trunk, pooling, embedding)."""
    return {part: sum(p.numel() for p in getattr(net, part).parameters()) for part in PARTS}
