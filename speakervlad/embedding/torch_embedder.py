"""Embedding audio with a trained model: ``load_model(path).embed(...)``.

Recordings of any length are embedded whole. Up to ``chunk_seconds`` they go
through the network in one piece; longer ones are processed in chunks of
``chunk_seconds`` with ``context_seconds`` of extra audio on each side, and the
pooling statistics of each chunk's central frames are merged. Because the trunk
is length-aware and every chunk boundary falls on a multiple of its time
stride, the result equals the whole-recording embedding (to float rounding)
when the context covers the trunk's receptive field; memory stays bounded by
the chunk size. Frontends whose normalisation needs utterance statistics
(fbank mean subtraction) take one extra cheap pass over the audio for them.

Speed: inference runs on a copy of the network with BatchNorm folded into the
convolutions and channels-last weights (fp32, equal to the plain network to
float rounding). ``precision="bf16"`` runs the trunk under bfloat16 autocast
(frontend and pooling stay fp32), about twice as fast on CPUs with AVX512-BF16
or AMX and on recent GPUs; embeddings keep a cosine similarity above 0.999.

``vad=True`` (or :class:`~speakervlad.embedding.vad.VadOptions`) embeds a
recording's speech alone: the segments the voice activity detector finds are
cut out and joined, and the result is embedded like any recording (chunked
when long). :meth:`EmbeddingModel.analyze_waveform` also gives the ghost
clusters' share of the assignment mass (GhostVLAD), and
:meth:`EmbeddingModel.frame_assignments` the assignment of every frame.

>>> model = load_model("model.pt")                          # doctest: +SKIP
>>> model.embed("speech.wav").shape                         # doctest: +SKIP
(512,)
"""
from __future__ import annotations

import contextlib
import copy
import ctypes
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..audio import AudioSource, audio_label, load_audio
from ..checkpoint import Checkpoint, load_checkpoint, model_fingerprint
from ..errors import AudioError, ConfigError
from ..models.pooling import GhostVLAD, Stats
from ..models.speaker_net import SpeakerNet
from .vad import Vad, speech_only, vad_options

DEFAULT_CHUNK_SECONDS = 60.0
DEFAULT_CONTEXT_SECONDS = 4.0
PRECISIONS = ("fp32", "bf16")

logger = logging.getLogger(__name__)


class Embedded(NamedTuple):
    """One recording's embedding and what its pooling saw."""

    embedding: np.ndarray  # (E,) float32, not normalised
    ghost_mass: float | None  # GhostVLAD: share of the assignment mass on ghost clusters, in [0, 1]; else None


class EmbeddingModel:
    """A SpeakerNet ready for inference, with its checkpoint's calibration."""

    def __init__(
        self,
        net: SpeakerNet,
        checkpoint: Checkpoint | None = None,
        device: str | torch.device = "cpu",
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        context_seconds: float = DEFAULT_CONTEXT_SECONDS,
        precision: str = "fp32",
        fuse: bool = True,
    ):
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        self.precision = precision
        #: the network that runs: BatchNorm folded and channels-last weights (``fuse``), or ``net`` itself
        self.runner = inference_copy(self.net) if fuse else self.net
        self.checkpoint = checkpoint
        self.config = net.config
        self.calibration = checkpoint.calibration if checkpoint else None
        self.fingerprint = model_fingerprint(net)
        self.embedding_dim = net.embedding_dim
        self.sample_rate = net.sample_rate
        self.min_seconds = net.min_seconds
        unit = net.frontend.hop_length * net.trunk.time_stride  # samples per trunk output frame
        self._unit = unit
        self._chunk = max(unit, round(chunk_seconds * self.sample_rate / unit) * unit)
        self._context = math.ceil(context_seconds * self.sample_rate / unit) * unit

    @property
    def whole_seconds(self) -> float:
        """Recordings up to this long go through the network whole; longer ones in chunks."""
        return (self._chunk + 2 * self._context) / self.sample_rate

    # ---- public API -------------------------------------------------------
    @property
    def frame_seconds(self) -> float:
        """Seconds of audio per pooled (trunk output) frame."""
        return self._unit / self.sample_rate

    def load(self, source: AudioSource, sample_rate: int | None = None, name: str | None = None,
             vad: Vad = None) -> np.ndarray:
        """Decode and validate audio for this model (mono, 16 kHz, long enough); with ``vad``, its speech alone."""
        wave = load_audio(source, sample_rate, self.sample_rate, min_seconds=self.min_seconds, name=name)
        options = vad_options(vad)
        return wave if options is None else speech_only(wave, options, audio_label(source, name), self.min_seconds)

    def embed(self, source: AudioSource, sample_rate: int | None = None, vad: Vad = None) -> np.ndarray:
        """The (E,) embedding of one recording (path, bytes, or array + sample_rate); ``vad``: of its speech."""
        return self.embed_waveform(self.load(source, sample_rate, vad=vad))

    def embed_many(self, sources: Sequence[AudioSource], batch_size: int = 16, vad: Vad = None) -> np.ndarray:
        """(N, E) embeddings of many recordings, batched by similar length; ``vad``: of their speech."""
        return self.embed_waveforms([self.load(s, vad=vad) for s in sources], batch_size)

    def embed_waveform(self, wave: np.ndarray) -> np.ndarray:
        """(E,) embedding of one 16 kHz waveform; long ones are chunked."""
        return self.analyze_waveform(wave).embedding

    def analyze_waveform(self, wave: np.ndarray) -> Embedded:
        """The embedding of one 16 kHz waveform (chunked when long) and its pooling's ghost mass."""
        with torch.inference_mode():
            samples = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
            if len(wave) <= self._chunk + 2 * self._context:
                stats = self._stats(samples[None].to(self.device), torch.tensor([len(wave)], device=self.device))
            else:
                stats = self._stats_chunked(samples)
            pooling = self.runner.pooling
            share = pooling.ghost_share(stats)
            embedding = self.runner.embedding(pooling.finalize(stats))
        return Embedded(embedding.cpu().numpy()[0], None if share is None else float(share[0]))

    def frame_assignments(self, wave: np.ndarray, name: str = "<waveform>") -> np.ndarray | None:
        """(K+G, T') assignment of each pooled frame to the K clusters and G ghosts (GhostVLAD; frame t
        covers ``[t, t+1) * frame_seconds``); None for poolings without clusters. Up to :attr:`whole_seconds`."""
        pooling = self.runner.pooling
        if not isinstance(pooling, GhostVLAD):
            return None
        if len(wave) > self._chunk + 2 * self._context:
            raise AudioError(name, f"{len(wave) / self.sample_rate:.0f} s is longer than the "
                             f"{self.whole_seconds:.0f} s the network takes whole: cut out a clip")
        with torch.inference_mode():
            waves = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None].to(self.device)
            feats, frame_lengths = self.runner.frontend(waves, torch.tensor([len(wave)], device=self.device))
            frames, frame_lengths = self._trunk(feats, frame_lengths)
            return pooling.assignments(frames, frame_lengths)[0].cpu().numpy()

    def embed_waveforms(self, waves: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """(N, E) embeddings of 16 kHz waveforms; sorted by length into padded batches."""
        out = np.zeros((len(waves), self.embedding_dim), dtype=np.float32)
        short = [i for i, w in enumerate(waves) if len(w) <= self._chunk + 2 * self._context]
        for i in set(range(len(waves))) - set(short):
            out[i] = self.embed_waveform(waves[i])
        order = sorted(short, key=lambda i: len(waves[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                batch, lengths = pad_batch([waves[i] for i in index])
                out[index] = self.forward(batch.to(self.device), lengths.to(self.device)).cpu().numpy()
        return out

    def forward(self, waves: Tensor, lengths: Tensor) -> Tensor:
        """Embeddings (B, E) float32 of a padded batch (B, N) with lengths (B,): the network at this precision."""
        return self.runner.embedding(self.runner.pooling.finalize(self._stats(waves, lengths)))

    def _stats(self, waves: Tensor, lengths: Tensor) -> Stats:
        """Pooling statistics of a padded batch (B, N) with lengths (B,)."""
        feats, frame_lengths = self.runner.frontend(waves, lengths)  # (B, F, T), fp32
        frames, frame_lengths = self._trunk(feats, frame_lengths)  # (B, D, T')
        return self.runner.pooling.stats(frames, frame_lengths)

    def _trunk(self, feats: Tensor, frame_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The trunk (the bulk of the compute) at this model's precision; frames returned as fp32."""
        bf16 = self.precision == "bf16"
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            frames, frame_lengths = self.runner.trunk(feats, frame_lengths)  # (B, D, T')
        return frames.float(), frame_lengths

    # ---- chunked streaming --------------------------------------------------
    def _stats_chunked(self, wave: Tensor) -> Stats:
        net = self.runner
        frontend = net.frontend
        norm = self._utterance_norm_stats(wave) if frontend.needs_utterance_stats else None
        stats = None
        for a, b, keep_from, keep_to in self._chunks(len(wave), self._unit, self._context):
            piece = wave[a:b][None].to(self.device)  # (1, n)
            lengths = torch.tensor([b - a], device=self.device)
            feats, frame_lengths = frontend.raw(piece, lengths)
            feats = frontend.normalize(feats, frame_lengths, norm)
            frames, out_lengths = self._trunk(feats, frame_lengths)  # (1, D, T')
            end = int(out_lengths[0]) if keep_to is None else keep_to
            core = frames[..., keep_from:end]
            chunk_stats = net.pooling.stats(core, torch.tensor([core.shape[-1]], device=self.device))
            stats = chunk_stats if stats is None else net.pooling.merge(stats, chunk_stats)
        return stats

    def _utterance_norm_stats(self, wave: Tensor) -> dict[str, Tensor]:
        frontend = self.net.frontend
        hop = frontend.hop_length
        context = math.ceil(frontend.context_samples / hop) * hop
        stats = None
        for a, b, keep_from, keep_to in self._chunks(len(wave), hop, context):
            piece = wave[a:b][None].to(self.device)
            feats, frame_lengths = frontend.raw(piece, torch.tensor([b - a], device=self.device))
            end = int(frame_lengths[0]) if keep_to is None else keep_to
            core = feats[..., keep_from:end]
            part = frontend.norm_stats(core, torch.tensor([core.shape[-1]], device=self.device))
            stats = part if stats is None else {k: stats[k] + part[k] for k in stats}
        return stats

    def _chunks(self, total: int, unit: int, context: int):
        """Yield (start, end, first kept frame, end of kept frames or None for 'to the end')."""
        core = max(unit, self._chunk // unit * unit)
        for start in range(0, total, core):
            a, b = max(0, start - context), min(total, start + core + context)
            keep_from = (start - a) // unit
            if b == total:
                yield a, b, keep_from, None
                return
            yield a, b, keep_from, keep_from + core // unit


def pad_batch(waves: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
    """Zero-pad waveforms into (B, N_max) with their lengths (B,)."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for row, wave in enumerate(waves):
        batch[row, : len(wave)] = torch.from_numpy(np.asarray(wave, dtype=np.float32))
    return batch, lengths


def inference_copy(net: SpeakerNet) -> SpeakerNet:
    """A copy of ``net`` for inference: each BatchNorm folded into its convolution, channels-last
    weights, in-place elementwise steps.

    Equal to ``net`` in eval mode to float rounding; fewer passes over memory and
    allocations, and oneDNN convolutions without layout conversions. Not for training.
    """
    fast = copy.deepcopy(net).eval()
    for module in list(fast.modules()):
        for name, child in list(module.named_children()):
            if (isinstance(child, nn.Sequential) and len(child) >= 2
                    and isinstance(child[0], nn.Conv2d) and isinstance(child[1], nn.BatchNorm2d)):
                setattr(module, name, nn.Sequential(fuse_conv_bn_eval(child[0], child[1]), *list(child)[2:]))
    for module in fast.modules():
        if hasattr(module, "inplace"):  # nn.ReLU and the trunk blocks (see models/resnet.py)
            module.inplace = True
    return fast.to(memory_format=torch.channels_last)


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    A forward pass allocates activations of hundreds of MB; by default each is a
    fresh ``mmap`` whose pages fault in again on every pass. Kept in the heap
    they are reused: about 25% faster on CPU for inputs of 10 s and more. The
    process then keeps its peak memory. Process-wide, so entry points call it
    (``speakervlad extract`` does); returns False where it does not apply (not glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters (malloc.h)
    done = bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    logger.debug("malloc keeps freed memory: %s", done)
    return done


def load_model(path: str | Path, device: str | torch.device = "cpu", **options) -> EmbeddingModel:
    """Load a checkpoint for inference.

    ``options``: chunk_seconds, context_seconds, precision ("fp32" | "bf16"), fuse (fold BatchNorm).
    """
    checkpoint = load_checkpoint(path)
    return EmbeddingModel(checkpoint.build_model(device), checkpoint, device, **options)
