"""Training examples: fixed-length random crops of utterances, seeded per draw.

The dataset is read with *draws* ``(item index, draw number)`` from
:class:`~speakervlad.data.sampler.SpeakerBalancedSampler`. The crop (and its
augmentation) of a draw at epoch ``e`` depends only on ``(seed, e, draw number,
item index)``: never on the worker that reads it or on the order of reading, so
a run resumed mid-epoch or with another number of DataLoader workers sees the
same examples, and an item drawn k times in an epoch gives k different crops.
A plain index ``i`` reads as the draw ``(i, i)``.

Call :meth:`CropDataset.set_epoch` before creating each epoch's DataLoader
iterator (workers copy the dataset when the iterator starts; do not use
``persistent_workers=True``, whose copies would keep the old epoch).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from ..audio import load_audio
from ..errors import AudioError, ConfigError
from .lists import SpeakerIndex, Utterance
from .sampler import Draw

#: formats read region by region (seekable, no decoder warm-up)
SEEKABLE_SUFFIXES = {".wav", ".flac"}
#: extra input samples read around a speed-perturbed crop, for the resampler's edges
RESAMPLE_MARGIN = 64

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class CropDataset(torch.utils.data.Dataset):
    """``(wave (crop_samples,) float32, label)`` crops of ``utts``.

    A crop starts uniformly at random; a file shorter than the crop is repeated
    (tiled) from its start. ``reverse_concat`` appends the time-reversed signal
    before cropping (the reference code's trick), doubling the material. A
    speed-perturbed utterance (``speed != 1``) is resampled by its speed
    (1.1: faster and higher). The ``augmenter`` is applied last, with the item's
    generator.
    """

    def __init__(
        self,
        utts: Sequence[Utterance],
        speaker_index: SpeakerIndex,
        crop_seconds: float,
        sample_rate: int = 16000,
        reverse_concat: bool = False,
        augmenter: Augment | None = None,
        seed: int = 0,
    ):
        self.utts = list(utts)
        self.labels = speaker_index.labels(self.utts)  # (N,)
        self.crop_samples = int(round(crop_seconds * sample_rate))
        if self.crop_samples <= 0:
            raise ConfigError(f"data.crop_seconds must be positive, got {crop_seconds}")
        self.sample_rate = sample_rate
        self.reverse_concat = reverse_concat
        self.augmenter = augmenter
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utts)

    def generator(self, index: int, draw: int) -> np.random.Generator:
        """The generator of draw number ``draw`` of item ``index`` at the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, draw, index])

    def __getitem__(self, draw: Draw | int) -> tuple[torch.Tensor, int]:
        index, number = (draw, draw) if isinstance(draw, int) else draw
        utt = self.utts[index]
        rng = self.generator(index, number)
        wave = self.crop(utt, rng)
        if self.augmenter is not None:
            wave = self.augmenter(wave, rng)
        return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), int(self.labels[index])

    def crop(self, utt: Utterance, rng: np.random.Generator) -> np.ndarray:
        """A ``(crop_samples,)`` crop of ``utt`` (speed applied), drawn with ``rng``."""
        if utt.speed == 1.0:
            return self._read_crop(utt.path, self.crop_samples, rng)
        need = int(math.ceil(self.crop_samples * utt.speed)) + RESAMPLE_MARGIN
        wave = self._read_crop(utt.path, need, rng)
        wave = soxr.resample(wave, self.sample_rate, self.sample_rate / utt.speed)
        return wave[: self.crop_samples].astype(np.float32, copy=False)

    def _read_crop(self, path: str, size: int, rng: np.random.Generator) -> np.ndarray:
        try:
            with AudioRegion(path, self.sample_rate) as source:
                length = source.frames
                period = 2 * length if self.reverse_concat else length
                start = int(rng.integers(0, period - size + 1)) if period > size else 0
                idx = (start + np.arange(size)) % period  # (size,) positions in the period
                if self.reverse_concat:
                    idx = np.where(idx < length, idx, period - 1 - idx)
                lo, hi = int(idx.min()), int(idx.max()) + 1
                return source.read(lo, hi)[idx - lo]
        except AudioError:
            raise
        except Exception as err:  # noqa: BLE001 - any decoder failure is the file's problem
            raise AudioError(path, f"cannot be read for training ({err}); run check_readable on the list") from None


class AudioRegion:
    """Random access to a file's samples at ``sample_rate`` (mono float32).

    WAV/FLAC files already at ``sample_rate`` are read region by region with
    soundfile; anything else is decoded whole with :func:`load_audio`.

    >>> import numpy as np
    >>> with AudioRegion(np.array([0, 0.5, 1, 0.5, 0], dtype=np.float32), 16000) as audio:
    ...     audio.frames, audio.read(1, 3).tolist()
    (5, [0.5, 1.0])
    """

    def __init__(self, source: str | np.ndarray, sample_rate: int):
        self.path = source if isinstance(source, str) else "<array>"
        self._handle: sf.SoundFile | None = None
        self._wave: np.ndarray | None = None
        if isinstance(source, np.ndarray):
            self._wave = source
        elif Path(source).suffix.lower() in SEEKABLE_SUFFIXES and Path(source).is_file():
            handle = sf.SoundFile(source)
            if handle.samplerate == sample_rate and handle.frames > 0:
                self._handle = handle
            else:
                handle.close()
        if self._handle is None and self._wave is None:
            self._wave = load_audio(source, target_rate=sample_rate)
        self.frames = self._handle.frames if self._handle is not None else len(self._wave)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)``, ``(stop - start,)`` float32."""
        if self._wave is not None:
            return self._wave[start:stop]
        self._handle.seek(start)
        block = self._handle.read(stop - start, dtype="float32", always_2d=True)  # (n, channels)
        if len(block) < stop - start:
            raise AudioError(self.path, f"truncated: {self.frames} samples declared, reading "
                                        f"[{start}, {stop}) returned {len(block)}")
        return block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> AudioRegion:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
