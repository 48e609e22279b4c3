"""Batched feature frontends: waveforms (B, N) with lengths -> features (B, F, T).

Both frontends split their work in two so long recordings can be processed in
chunks (see :mod:`speakervlad.embedding.torch_embedder`):

* ``raw(waves, lengths)`` computes frame-local features; frame ``t`` always
  starts at sample ``t * hop_length``, so chunks cut at multiples of the hop
  line up with the whole recording.
* ``normalize(feats, frame_lengths, stats)`` applies the normalisation, using
  utterance statistics from :meth:`norm_stats` (additive sums, so they can be
  accumulated chunk by chunk). Frame-local normalisations need no statistics.

Padded frames (beyond each utterance's length) are zero on output.
"""
from __future__ import annotations

import torch
import torchaudio.compliance.kaldi as kaldi
from torch import Tensor, nn

from ..config import FrontendConfig
from ..errors import ConfigError
from ..registry import Registry
from .masking import time_mask

FRONTENDS: Registry[nn.Module] = Registry("frontend")
EPS = 1e-5
#: magnitudes below this are floored before ``compression: log`` (-120 dB of full scale)
LOG_FLOOR = 1e-6

NormStats = dict[str, Tensor]


def frame_mask(frame_lengths: Tensor, num_frames: int) -> Tensor:
    """(B, T) float mask: 1 for valid frames, 0 for padding."""
    return time_mask(frame_lengths, num_frames).float()


class Frontend(nn.Module):
    """Common interface; subclasses implement ``raw``, ``frame_lengths`` and normalisation."""

    sample_rate: int
    hop_length: int
    num_bins: int
    #: samples of left/right context a frame reads beyond its hop (for chunking)
    context_samples: int
    #: True when normalisation needs statistics over the whole utterance
    needs_utterance_stats: bool

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        raise NotImplementedError

    def raw(self, waves: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def norm_stats(self, feats: Tensor, frame_lengths: Tensor) -> NormStats:
        """Additive per-bin sums over valid frames: count (B,), sum and sumsq (B, F)."""
        mask = frame_mask(frame_lengths, feats.shape[-1])[:, None, :]  # (B, 1, T)
        masked = feats * mask
        return {
            "count": frame_lengths.to(feats.dtype),
            "sum": masked.sum(-1),
            "sumsq": (masked * feats).sum(-1),
        }

    def normalize(self, feats: Tensor, frame_lengths: Tensor, stats: NormStats | None) -> Tensor:
        raise NotImplementedError

    def forward(self, waves: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """waves (B, N), lengths (B,) in samples -> feats (B, F, T), frame lengths (B,)."""
        if lengths is None:
            lengths = torch.full((waves.shape[0],), waves.shape[1], device=waves.device)
        feats, frame_lengths = self.raw(waves, lengths)
        stats = self.norm_stats(feats, frame_lengths) if self.needs_utterance_stats else None
        return self.normalize(feats, frame_lengths, stats), frame_lengths


class Spectrogram(Frontend):
    """Linear-magnitude STFT as in the reference system (Xie et al. 2019).

    512-point FFT of a 400-sample Hann window every 160 samples, centred frames
    with zero padding (librosa's default), |STFT| with 257 bins. ``compression``:
    ``none`` (reference: linear magnitude) or ``log`` (log |STFT|, floored at
    1e-6). ``normalize``: ``frame`` (reference: each frame standardised across
    frequency), ``bin`` (each frequency bin standardised over the utterance) or
    ``none``.
    """

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        if cfg.normalize not in ("frame", "bin", "none"):
            raise ConfigError(f"spectrogram normalize must be frame|bin|none, got {cfg.normalize!r}")
        if cfg.compression not in ("none", "log"):
            raise ConfigError(f"spectrogram compression must be none|log, got {cfg.compression!r}")
        self.log = cfg.compression == "log"
        self.sample_rate, self.n_fft = cfg.sample_rate, cfg.n_fft
        self.win_length, self.hop_length = cfg.win_length, cfg.hop_length
        self.num_bins = cfg.n_fft // 2 + 1
        self.mode = cfg.normalize
        self.context_samples = cfg.n_fft // 2
        self.needs_utterance_stats = cfg.normalize == "bin"
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        return 1 + torch.div(lengths, self.hop_length, rounding_mode="floor")

    def raw(self, waves: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        spec = torch.stft(
            waves, self.n_fft, self.hop_length, self.win_length, window=self.window,
            center=True, pad_mode="constant", return_complex=True,
        ).abs()  # (B, 257, T)
        if self.log:
            spec = spec.clamp_min(LOG_FLOOR).log()
        frame_lengths = self.frame_lengths(lengths)
        return spec * frame_mask(frame_lengths, spec.shape[-1])[:, None, :], frame_lengths

    def normalize(self, feats: Tensor, frame_lengths: Tensor, stats: NormStats | None) -> Tensor:
        mask = frame_mask(frame_lengths, feats.shape[-1])[:, None, :]  # (B, 1, T)
        if self.mode == "frame":
            mean = feats.mean(1, keepdim=True)  # (B, 1, T)
            std = feats.std(1, keepdim=True, unbiased=False)
            return (feats - mean) / (std + EPS) * mask
        if self.mode == "bin":
            mean, std = _mean_std(stats)
            return (feats - mean[..., None]) / (std[..., None] + EPS) * mask
        return feats


class Fbank(Frontend):
    """Kaldi-compatible log-mel filterbank, batched (equals ``torchaudio.compliance.kaldi.fbank``).

    Samples are scaled to the 16-bit range as Kaldi expects; 25 ms povey window,
    10 ms hop, pre-emphasis 0.97, DC removal, power spectrum, ``n_mels`` bins
    from 20 Hz to Nyquist, no dither, frames inside the signal only
    (``snip_edges``). ``normalize``: ``mean`` (utterance mean subtraction) or ``none``.
    """

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        if cfg.normalize not in ("mean", "none"):
            raise ConfigError(f"fbank normalize must be mean|none, got {cfg.normalize!r}")
        if cfg.compression != "none":
            raise ConfigError(f"fbank features are log-mel already: model.frontend.compression must be none, "
                              f"got {cfg.compression!r}")
        self.sample_rate, self.hop_length, self.win_length = cfg.sample_rate, cfg.hop_length, cfg.win_length
        self.n_fft = 1 << (cfg.win_length - 1).bit_length()
        self.num_bins = cfg.n_mels
        self.mode = cfg.normalize
        self.context_samples = cfg.win_length
        self.needs_utterance_stats = cfg.normalize == "mean"
        banks, _ = kaldi.get_mel_banks(cfg.n_mels, self.n_fft, float(cfg.sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0)
        banks = nn.functional.pad(banks, (0, 1))  # (n_mels, n_fft/2 + 1)
        self.register_buffer("banks", banks, persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.win_length, periodic=False).pow(0.85), persistent=False)

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        frames = 1 + torch.div(lengths - self.win_length, self.hop_length, rounding_mode="floor")
        return frames.clamp(min=0)

    def raw(self, waves: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        frame_lengths = self.frame_lengths(lengths)
        if waves.shape[1] < self.win_length:
            empty = waves.new_zeros(waves.shape[0], self.num_bins, 0)
            return empty, frame_lengths
        frames = (waves * 32768.0).unfold(1, self.win_length, self.hop_length)  # (B, T, W)
        frames = frames - frames.mean(-1, keepdim=True)
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = (frames - 0.97 * previous) * self.window
        power = torch.fft.rfft(frames, n=self.n_fft).abs().pow(2)  # (B, T, n_fft/2+1)
        mel = power @ self.banks.T  # (B, T, n_mels)
        logmel = mel.clamp_min(torch.finfo(mel.dtype).eps).log().transpose(1, 2)  # (B, F, T)
        return logmel * frame_mask(frame_lengths, logmel.shape[-1])[:, None, :], frame_lengths

    def normalize(self, feats: Tensor, frame_lengths: Tensor, stats: NormStats | None) -> Tensor:
        if self.mode == "none":
            return feats
        mean, _ = _mean_std(stats)
        return (feats - mean[..., None]) * frame_mask(frame_lengths, feats.shape[-1])[:, None, :]


def _mean_std(stats: NormStats | None) -> tuple[Tensor, Tensor]:
    if stats is None:
        raise ValueError("this normalisation needs utterance statistics (norm_stats)")
    count = stats["count"].clamp(min=1)[:, None]  # (B, 1)
    mean = stats["sum"] / count
    var = (stats["sumsq"] / count - mean.pow(2)).clamp(min=0)
    return mean, var.sqrt()


@FRONTENDS.register("spectrogram")
def _spectrogram(cfg: FrontendConfig) -> Frontend:
    return Spectrogram(cfg)


@FRONTENDS.register("fbank")
def _fbank(cfg: FrontendConfig) -> Frontend:
    return Fbank(cfg)


def build_frontend(cfg: FrontendConfig) -> Frontend:
    """The frontend named by ``cfg.name`` (spectrogram | fbank)."""
    return FRONTENDS.get(cfg.name)(cfg)
