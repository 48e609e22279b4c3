"""Held-out speakers and verification trials built from any labelled list.

How trials are built (:func:`make_trials`): a *target* trial pairs two distinct
utterances (different keys, so never a recording with itself) of one speaker; a
*non-target* trial pairs utterances of two different speakers. Each unordered
pair appears at most once; pairs are drawn uniformly among all possible pairs
of their kind, ``target_fraction`` of the trials are targets (half by default:
balanced), and the list is shuffled. With one recording per speaker (the
LibriSpeech subset), :func:`cut_segments` first cuts each recording into
non-overlapping segments, so target trials then compare different parts of
one recording (same session and channel: easier than cross-session trials).

>>> from speakervlad.data.lists import Utterance
>>> utts = [Utterance(f"{s}{i}", s, "") for s in "ab" for i in range(2)]
>>> trials = make_trials(utts, 4, seed=0)
>>> sorted(t for t in trials if t[2])
[('a0', 'a1', True), ('b0', 'b1', True)]
>>> sum(not t[2] for t in trials)
2
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import load_audio
from ..errors import ConfigError, TrialError
from ..scoring.trials import Trial
from .lists import Utterance

logger = logging.getLogger(__name__)



def split_speakers(
    utts: Sequence[Utterance], n_heldout: int, seed: int
) -> tuple[list[Utterance], list[Utterance]]:
    """Split ``utts`` by speaker: ``n_heldout`` random speakers (from ``seed``) go to the second list."""
    speakers = sorted({u.speaker for u in utts})
    if not 0 <= n_heldout < len(speakers):
        raise ConfigError(
            f"cannot hold out {n_heldout} of {len(speakers)} speakers; "
            "hold out fewer, leaving at least one speaker for training"
        )
    held = set(np.random.default_rng(seed).choice(speakers, size=n_heldout, replace=False).tolist())
    return [u for u in utts if u.speaker not in held], [u for u in utts if u.speaker in held]


def make_trials(
    utts: Sequence[Utterance], n_trials: int, seed: int, target_fraction: float = 0.5
) -> list[Trial]:
    """``n_trials`` shuffled ``(enroll_key, test_key, is_target)`` trials, seeded by ``seed``.

    Targets pair two distinct utterances of one speaker, non-targets utterances
    of two speakers; each unordered pair at most once, drawn uniformly among the
    pairs of its kind; ``target_fraction`` of the trials are targets (balanced by
    default). When fewer target pairs exist than requested, all are used and the
    non-targets shrink to keep ``target_fraction`` (logged).
    """
    if not 0 < target_fraction < 1:
        raise TrialError(f"target_fraction must be between 0 and 1, got {target_fraction}")
    keys = [u.key for u in utts]
    if len(set(keys)) != len(keys):
        raise TrialError("utterance keys must be unique to build trials")
    order = np.argsort([u.speaker for u in utts], kind="stable")
    keys = [keys[i] for i in order]
    speaker_of = np.unique([utts[i].speaker for i in order], return_inverse=True)[1]  # (N,)
    counts = np.bincount(speaker_of)  # (S,)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pairs_per_speaker = counts * (counts - 1) // 2
    n_target_pairs = int(pairs_per_speaker.sum())
    if n_target_pairs == 0:
        raise TrialError(
            "no speaker has two utterances, so there is no target trial; "
            "cut recordings into segments first (speakervlad.data.heldout.cut_segments)"
        )
    n_target = int(round(n_trials * target_fraction))
    n_nontarget = n_trials - n_target
    if n_target > n_target_pairs:
        n_nontarget = min(n_nontarget, int(round(n_target_pairs * (1 - target_fraction) / target_fraction)))
        logger.warning("only %d target pairs exist (asked for %d): using %d targets and %d non-targets",
                       n_target_pairs, n_target, n_target_pairs, n_nontarget)
        n_target = n_target_pairs
    rng = np.random.default_rng(seed)
    chosen = rng.choice(n_target_pairs, size=n_target, replace=False)
    target = _decode_pairs(chosen, pairs_per_speaker, counts, starts)
    nontarget = _nontarget_pairs(speaker_of, n_nontarget, n_target_pairs, rng)
    trials = [(keys[a], keys[b], True) for a, b in target] + [
        (keys[a], keys[b], False) for a, b in nontarget
    ]
    return [trials[i] for i in rng.permutation(len(trials))]


def all_pairs(utts: Sequence[Utterance]) -> list[Trial]:
    """Every unordered pair of distinct utterances as a trial, in key order.

    >>> from speakervlad.data.lists import Utterance
    >>> all_pairs([Utterance(k, k[0], "") for k in ("a1", "b1", "a2")])
    [('a1', 'a2', True), ('a1', 'b1', False), ('a2', 'b1', False)]
    """
    ordered = sorted(utts, key=lambda u: u.key)
    if len({u.key for u in ordered}) != len(ordered):
        raise TrialError("utterance keys must be unique to build trials")
    return [
        (a.key, b.key, a.speaker == b.speaker)
        for i, a in enumerate(ordered) for b in ordered[i + 1:]
    ]


def cut_segments(
    utts: Sequence[Utterance], out_dir: str | Path, segment_seconds: float, sample_rate: int = 16000
) -> list[Utterance]:
    """Cut each recording into consecutive non-overlapping ``segment_seconds`` WAV files.

    Segment ``k`` of key ``spk/x.flac`` is written to ``out_dir/spk/x_{k:03d}.wav``
    and keyed by that relative path; a shorter remainder is dropped.
    """
    out_dir = Path(out_dir)
    size = int(round(segment_seconds * sample_rate))
    if size <= 0:
        raise ConfigError(f"segment_seconds must be positive, got {segment_seconds}")
    segments, too_short = [], 0
    for utt in utts:
        wave = load_audio(utt.path, target_rate=sample_rate, name=utt.key)
        count = len(wave) // size
        too_short += count == 0
        stem = Path(utt.key).with_suffix("")
        for k in range(count):
            key = f"{stem.as_posix()}_{k:03d}.wav"
            target = out_dir / key
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(target, np.clip(wave[k * size:(k + 1) * size], -1, 1), sample_rate, subtype="PCM_16")
            segments.append(replace(utt, key=key, path=str(target), speed=1.0))
    if too_short:
        logger.warning("%d of %d recordings are shorter than %.2f s and gave no segment",
                       too_short, len(utts), segment_seconds)
    return segments


def _decode_pairs(
    chosen: np.ndarray, pairs_per_speaker: np.ndarray, counts: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """Map flat target-pair numbers to utterance index pairs ``(P, 2)``."""
    ends = np.cumsum(pairs_per_speaker)
    speaker = np.searchsorted(ends, chosen, side="right")
    k = chosen - (ends[speaker] - pairs_per_speaker[speaker])  # pair number within the speaker
    n = counts[speaker]
    # k-th pair (i < j) of n items in row-major order of the upper triangle
    i = n - 2 - np.floor(np.sqrt(-8 * k + 4 * n * (n - 1) - 7) / 2.0 - 0.5).astype(np.int64)
    j = k + i + 1 - n * (n - 1) // 2 + (n - i) * (n - i - 1) // 2
    return np.stack([starts[speaker] + i, starts[speaker] + j], axis=1)


def _nontarget_pairs(
    speaker_of: np.ndarray, n: int, n_same: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` distinct cross-speaker index pairs ``(n, 2)``, uniform over all such pairs.

    ``n_same`` is the number of same-speaker pairs.
    """
    total = len(speaker_of)
    possible = total * (total - 1) // 2 - n_same
    if n >= possible:
        a, b = np.triu_indices(total, k=1)
        keep = speaker_of[a] != speaker_of[b]
        pairs = np.stack([a[keep], b[keep]], axis=1)
        return pairs[rng.permutation(len(pairs))[:n]]
    found: dict[tuple[int, int], None] = {}
    while len(found) < n:
        a, b = rng.integers(0, total, size=(2, 2 * (n - len(found)) + 16))
        for x, y in zip(np.minimum(a, b), np.maximum(a, b)):
            if speaker_of[x] != speaker_of[y]:
                found.setdefault((int(x), int(y)))
                if len(found) == n:
                    break
    return np.array(list(found), dtype=np.int64).reshape(-1, 2)
