"""Length-aware temporal pooling: frame features (B, D, T) -> (B, out_dim).

Every pooling is split into ``stats`` (sufficient statistics of a batch of
frames, which :meth:`Pooling.merge` combines) and ``finalize``. ``forward`` is
``finalize(stats(x, lengths))``; a long recording can be pooled chunk by chunk
with the same result.

* ``ghostvlad`` (Zhong et al. 2018; Xie et al. 2019): soft assignment of each
  frame to K clusters plus G ghost clusters, residuals to learned centres,
  ghost clusters dropped, each cluster vector L2-normalised, flattened to K x D.
* ``netvlad``: GhostVLAD without ghost clusters.

For GhostVLAD, :meth:`Pooling.ghost_share` is the share of the frames' assignment
mass that went to the ghost clusters (what the paper argues they absorb:
uninformative frames); :meth:`GhostVLAD.assignments` gives it frame by frame.
* ``tap`` (mean), ``tstp`` (mean and standard deviation), ``asp`` (attentive
  statistics, Okabe et al. 2018).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import PoolingConfig
from ..errors import ConfigError
from ..registry import Registry
from .masking import time_mask

POOLINGS: Registry[nn.Module] = Registry("pooling")
Stats = dict[str, Tensor]


class Pooling(nn.Module):
    out_dim: int

    def stats(self, x: Tensor, lengths: Tensor) -> Stats:
        raise NotImplementedError

    def merge(self, a: Stats, b: Stats) -> Stats:
        """Statistics of the concatenation of two chunks (additive by default)."""
        return {key: a[key] + b[key] for key in a}

    def finalize(self, stats: Stats) -> Tensor:
        raise NotImplementedError

    def ghost_share(self, stats: Stats) -> Tensor | None:
        """(B,) share of the frames' assignment mass that went to ghost clusters; None for poolings
        without clusters (tap, tstp, asp)."""
        return None

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.finalize(self.stats(x, lengths))


class GhostVLAD(Pooling):
    """NetVLAD with ghost clusters; ``ghost_clusters=0`` is plain NetVLAD.

    A 1x1 projection (+ReLU) gives D-dim frame features and another gives the
    K+G cluster scores, as the reference's two (7,1) convolutions over the
    trunk's 7 x 512 map do. ``feature_dim=0`` aggregates the trunk's frames as
    they are (D = ``in_dim``, no projection).
    """

    def __init__(self, in_dim: int, feature_dim: int, clusters: int, ghost_clusters: int):
        super().__init__()
        if feature_dim < 0:
            raise ConfigError(f"model.pooling.feature_dim must be >= 0 (0: no projection), got {feature_dim}")
        self.clusters, self.ghost_clusters = clusters, ghost_clusters
        self.features = nn.Conv1d(in_dim, feature_dim, 1) if feature_dim else None
        feature_dim = feature_dim or in_dim
        self.assign = nn.Conv1d(in_dim, clusters + ghost_clusters, 1)
        self.centers = nn.Parameter(torch.empty(clusters + ghost_clusters, feature_dim))
        nn.init.orthogonal_(self.centers)
        self.out_dim = clusters * feature_dim

    def assignments(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(B, K+G, T) soft assignment of each frame to the K clusters, then the G ghosts; each valid
        frame's column sums to 1, padded frames are 0."""
        weights = self.assign(x).softmax(dim=1)  # (B, K+G, T)
        return weights * time_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, :]

    def stats(self, x: Tensor, lengths: Tensor) -> Stats:
        feats = x if self.features is None else self.features(x).relu()  # (B, D, T)
        weights = self.assignments(x, lengths)  # (B, K+G, T)
        return {
            "weighted": weights @ feats.transpose(1, 2),  # (B, K+G, D): sum_t a_k(t) x_t
            "mass": weights.sum(-1),  # (B, K+G): sum_t a_k(t)
        }

    def finalize(self, stats: Stats) -> Tensor:
        residuals = stats["weighted"] - stats["mass"][..., None] * self.centers  # (B, K+G, D)
        residuals = F.normalize(residuals[:, : self.clusters], dim=-1)  # (B, K, D), ghosts dropped
        return residuals.flatten(1)  # (B, K*D)

    def ghost_share(self, stats: Stats) -> Tensor:
        """(B,) in [0, 1]: the ghosts' share of the assignment mass (0 for NetVLAD, which has none)."""
        mass = stats["mass"]  # (B, K+G)
        return mass[:, self.clusters:].sum(-1) / mass.sum(-1).clamp(min=torch.finfo(mass.dtype).tiny)


class MeanPooling(Pooling):
    """Temporal average pooling (TAP)."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.out_dim = in_dim

    def stats(self, x: Tensor, lengths: Tensor) -> Stats:
        mask = time_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, :]  # (B, 1, T)
        return {"sum": (x * mask).sum(-1), "count": lengths.to(x.dtype)}

    def finalize(self, stats: Stats) -> Tensor:
        return stats["sum"] / stats["count"].clamp(min=1)[:, None]


class StatsPooling(Pooling):
    """Temporal statistics pooling (TSTP): mean and unbiased standard deviation."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.out_dim = 2 * in_dim

    def stats(self, x: Tensor, lengths: Tensor) -> Stats:
        masked = x * time_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, :]
        return {"sum": masked.sum(-1), "sumsq": (masked * x).sum(-1), "count": lengths.to(x.dtype)}

    def finalize(self, stats: Stats) -> Tensor:
        count = stats["count"][:, None]  # (B, 1)
        mean = stats["sum"] / count.clamp(min=1)
        var = (stats["sumsq"] - stats["sum"] * mean) / (count - 1).clamp(min=1)
        return torch.cat([mean, (var.clamp(min=0) + 1e-7).sqrt()], dim=-1)


class AttentiveStatsPooling(Pooling):
    """Attentive statistics pooling: attention-weighted mean and std over time."""

    def __init__(self, in_dim: int, attention_dim: int):
        super().__init__()
        self.attention = nn.Sequential(nn.Conv1d(in_dim, attention_dim, 1), nn.Tanh(), nn.Conv1d(attention_dim, 1, 1))
        self.out_dim = 2 * in_dim

    def stats(self, x: Tensor, lengths: Tensor) -> Stats:
        mask = time_mask(lengths, x.shape[-1])  # (B, T)
        scores = self.attention(x)[:, 0].masked_fill(~mask, float("-inf"))  # (B, T)
        peak = scores.max(-1).values  # (B,)
        weights = (scores - peak[:, None]).exp()  # (B, T), 0 on padding
        weighted = x * weights[:, None, :]
        return {"peak": peak, "mass": weights.sum(-1), "m1": weighted.sum(-1), "m2": (weighted * x).sum(-1)}

    def merge(self, a: Stats, b: Stats) -> Stats:
        peak = torch.maximum(a["peak"], b["peak"])
        scale_a, scale_b = (a["peak"] - peak).exp(), (b["peak"] - peak).exp()  # (B,)
        merged = {"peak": peak, "mass": a["mass"] * scale_a + b["mass"] * scale_b}
        for key in ("m1", "m2"):
            merged[key] = a[key] * scale_a[:, None] + b[key] * scale_b[:, None]
        return merged

    def finalize(self, stats: Stats) -> Tensor:
        mass = stats["mass"][:, None]
        mean = stats["m1"] / mass
        var = (stats["m2"] / mass - mean.pow(2)).clamp(min=0)
        return torch.cat([mean, (var + 1e-7).sqrt()], dim=-1)


@POOLINGS.register("ghostvlad")
def _ghostvlad(cfg: PoolingConfig, in_dim: int) -> Pooling:
    return GhostVLAD(in_dim, cfg.feature_dim, cfg.clusters, cfg.ghost_clusters)


@POOLINGS.register("netvlad")
def _netvlad(cfg: PoolingConfig, in_dim: int) -> Pooling:
    if cfg.ghost_clusters:
        raise ConfigError(f"model.pooling.ghost_clusters={cfg.ghost_clusters} means nothing for netvlad, "
                          "which has no ghost clusters: set model.pooling.ghost_clusters=0, or use ghostvlad")
    return GhostVLAD(in_dim, cfg.feature_dim, cfg.clusters, 0)


@POOLINGS.register("tap")
def _tap(cfg: PoolingConfig, in_dim: int) -> Pooling:
    return MeanPooling(in_dim)


@POOLINGS.register("tstp")
def _tstp(cfg: PoolingConfig, in_dim: int) -> Pooling:
    return StatsPooling(in_dim)


@POOLINGS.register("asp")
def _asp(cfg: PoolingConfig, in_dim: int) -> Pooling:
    return AttentiveStatsPooling(in_dim, cfg.attention_dim)


def build_pooling(cfg: PoolingConfig, in_dim: int) -> Pooling:
    """The pooling named by ``cfg.name`` over ``in_dim``-dimensional frames."""
    return POOLINGS.get(cfg.name)(cfg, in_dim)
