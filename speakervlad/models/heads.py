"""Classification heads for training; each owns its classifier weights.

``forward(embeddings (B, E), labels (B,)) -> logits (B, C)`` for cross-entropy;
the margin is applied to each row's target class. ``margin`` is a plain
attribute so a schedule can ramp it during training.

* ``softmax``: a linear classifier.
* ``am_softmax`` (additive margin, CosFace): s * (cos(theta) - m) for the target.
* ``aam_softmax`` (additive angular margin, ArcFace): s * cos(theta + m).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import HeadConfig
from ..registry import Registry

HEADS: Registry[nn.Module] = Registry("head")


class SoftmaxHead(nn.Module):
    def __init__(self, embedding_dim: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(embedding_dim, num_classes)
        self.margin = 0.0

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.classifier(embeddings)


class _CosineHead(nn.Module):
    def __init__(self, embedding_dim: int, num_classes: int, margin: float, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        self.margin, self.scale = float(margin), float(scale)

    def cosine(self, embeddings: Tensor) -> Tensor:
        return F.linear(F.normalize(embeddings.float(), dim=-1), F.normalize(self.weight.float(), dim=-1))  # (B, C)

    def target_logit(self, cosine: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        cosine = self.cosine(embeddings)
        target = F.one_hot(labels, cosine.shape[1]).bool()
        return self.scale * torch.where(target, self.target_logit(cosine), cosine)


class AMSoftmaxHead(_CosineHead):
    """Additive margin softmax (reference: m 0.35, s 30)."""

    def target_logit(self, cosine: Tensor) -> Tensor:
        return cosine - self.margin


class AAMSoftmaxHead(_CosineHead):
    """Additive angular margin softmax (ArcFace), monotonic beyond theta + m > pi."""

    def target_logit(self, cosine: Tensor) -> Tensor:
        m = self.margin
        sine = (1.0 - cosine.pow(2)).clamp(min=1e-9).sqrt()
        phi = cosine * math.cos(m) - sine * math.sin(m)  # cos(theta + m)
        # past theta = pi - m, cos(theta + m) would rise again: use the linear extension
        return torch.where(cosine > math.cos(math.pi - m), phi, cosine - math.sin(math.pi - m) * m)


@HEADS.register("softmax")
def _softmax(cfg: HeadConfig, embedding_dim: int, num_classes: int) -> nn.Module:
    return SoftmaxHead(embedding_dim, num_classes)


@HEADS.register("am_softmax")
def _am(cfg: HeadConfig, embedding_dim: int, num_classes: int) -> nn.Module:
    return AMSoftmaxHead(embedding_dim, num_classes, cfg.margin, cfg.scale)


@HEADS.register("aam_softmax")
def _aam(cfg: HeadConfig, embedding_dim: int, num_classes: int) -> nn.Module:
    return AAMSoftmaxHead(embedding_dim, num_classes, cfg.margin, cfg.scale)


def build_head(cfg: HeadConfig, embedding_dim: int, num_classes: int) -> nn.Module:
    """The head named by ``cfg.name`` for ``num_classes`` speakers."""
    return HEADS.get(cfg.name)(cfg, embedding_dim, num_classes)
