"""Speaker-balanced, rank-sharded, resumable sampling of training items.

An epoch's order depends only on ``(seed, epoch)``: every rank computes the same
global order and takes its own stride of it, and a resumed run skips the items
already seen with :meth:`SpeakerBalancedSampler.set_start`.

The sampler yields *draws*, ``(item index, draw number)`` pairs; the draw number
is the draw's position in the epoch's global order, unique within an epoch. The
dataset seeds a draw's crop and augmentation by its number, so an item drawn k
times in one epoch gives k different examples.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from ..errors import ConfigError

#: ``(item index, draw number)``: what the sampler yields and the dataset reads
Draw = tuple[int, int]


class SpeakerBalancedSampler(torch.utils.data.Sampler[Draw]):
    """Draws from a dataset whose item ``i`` has class ``labels[i]``.

    Balanced (default): each epoch every speaker is drawn the same number of
    times, ``utterances_per_speaker``, or when that is 0 the mean number of
    utterances per speaker (rounded up), so an epoch is about as long as the
    data. A speaker's draws cycle through its utterances in a fresh random order
    (each used once before any is reused). ``balanced=False`` draws every
    utterance exactly once. With ``shuffle`` the draws of all speakers are
    shuffled together; without, they come speaker by speaker, in index order.

    The epoch's list is padded by wrap-around to a multiple of ``world_size`` and
    rank ``r`` takes positions ``r, r + world_size, ...``: all ranks get
    ``len(self)`` draws, so DDP ranks take the same number of steps. A draw's
    number is its position in that padded global list.
    """

    def __init__(
        self,
        labels: np.ndarray,
        utterances_per_speaker: int = 0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        balanced: bool = True,
    ):
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise ConfigError("the sampler needs a non-empty 1-D array of labels")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        if utterances_per_speaker < 0:
            raise ConfigError(f"utterances_per_speaker must be >= 0, got {utterances_per_speaker}")
        order = np.argsort(labels, kind="stable")
        _, counts = np.unique(labels, return_counts=True)
        self._groups = np.split(order, np.cumsum(counts)[:-1])  # item indices per speaker
        mean_count = int(math.ceil(len(labels) / len(counts)))
        self.draws_per_speaker = (utterances_per_speaker or mean_count) if balanced else 0
        self.balanced = balanced
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0
        self._start = 0
        total = self.draws_per_speaker * len(counts) if balanced else len(labels)
        self.num_samples = int(math.ceil(total / world_size))  # per rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, n: int) -> None:
        """Skip this rank's first ``n`` indices on the next iteration only (mid-epoch resume)."""
        if not 0 <= n <= self.num_samples:
            raise ConfigError(f"cannot skip {n} of the epoch's {self.num_samples} items")
        self._start = n

    def epoch_indices(self) -> np.ndarray:
        """This rank's ``(len(self),)`` indices for the current epoch (no skipping)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.balanced:
            parts = [self._draws(group, rng) for group in self._groups]
        else:
            parts = list(self._groups)
        order = np.concatenate(parts)
        if self.shuffle:
            order = order[rng.permutation(len(order))]
        padded = np.resize(order, self.num_samples * self.world_size)  # wrap-around padding
        return padded[self.rank :: self.world_size]

    def _draws(self, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.shuffle:
            return np.resize(group, self.draws_per_speaker)
        rounds = int(math.ceil(self.draws_per_speaker / len(group)))
        cycles = [group[rng.permutation(len(group))] for _ in range(rounds)]
        return np.concatenate(cycles)[: self.draws_per_speaker]

    def __iter__(self) -> Iterator[Draw]:
        start, self._start = self._start, 0
        indices = self.epoch_indices()
        numbers = self.rank + self.world_size * np.arange(len(indices))  # positions in the global list
        return zip(indices[start:].tolist(), numbers[start:].tolist())

    def __len__(self) -> int:
        """Draws per rank per epoch (not reduced by :meth:`set_start`)."""
        return self.num_samples
