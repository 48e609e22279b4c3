"""What a VLAD pooling did with a recording, frame by frame: ``speakervlad explain``.

:func:`explain` runs the voice activity detector and the model on one
recording (whole, not with its speech cut out, so every frame is shown) and
keeps the soft assignment of each pooled frame to the K clusters and the G
ghost clusters. The *ghost mass* of a frame is the part of its assignment that
went to the ghosts; the recording's ghost mass is its mean over the frames
(what :meth:`EmbeddingModel.analyze_waveform` reports). Comparing it between the
frames the VAD calls speech and the others shows whether the ghosts absorb the
non-speech, as Zhong et al. and Xie et al. argue they do.

:func:`plot_explanation` draws one PNG: the spectrogram with the VAD segments,
the VAD's speech probability, the K + G assignments of every frame, and the
ghost mass over time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..scoring.metrics import roc_auc
from .torch_embedder import EmbeddingModel
from .vad import SpeechSegments, VadOptions, VoiceActivityDetector

SPECTROGRAM_WINDOW, SPECTROGRAM_HOP = 400, 160  # 25 ms Hann window every 10 ms (16 kHz)


@dataclass(frozen=True)
class Explanation:
    """One recording as the VAD and a VLAD pooling saw it."""

    wave: np.ndarray  # (N,) 16 kHz
    speech: SpeechSegments
    speech_probability: np.ndarray  # (F,) per 32 ms VAD frame
    assignments: np.ndarray  # (K+G, T) per pooled frame; each column sums to 1
    clusters: int  # K; the last G rows are the ghosts
    frame_seconds: float  # seconds per pooled frame
    sample_rate: int = 16000

    @property
    def ghosts(self) -> int:
        return self.assignments.shape[0] - self.clusters

    @property
    def frame_times(self) -> np.ndarray:
        """(T,) centre of each pooled frame, in seconds."""
        return (np.arange(self.assignments.shape[1]) + 0.5) * self.frame_seconds

    @property
    def frame_ghost_mass(self) -> np.ndarray:
        """(T,) each frame's assignment to the ghost clusters, in [0, 1]."""
        return self.assignments[self.clusters:].sum(0)

    @property
    def frame_is_speech(self) -> np.ndarray:
        """(T,) whether each frame's centre lies in a VAD speech segment."""
        return self.speech.contains(self.frame_times)

    def summary(self) -> dict[str, float | int | None]:
        """The recording's ghost mass, its mean over speech and non-speech frames, and the ROC AUC of
        per-frame ghost mass as a detector of non-speech (None where a class has no frames)."""
        mass, speech = self.frame_ghost_mass, self.frame_is_speech
        both = 0 < speech.sum() < len(speech)
        return {
            "seconds": len(self.wave) / self.sample_rate,
            "speech_seconds": self.speech.seconds,
            "segments": len(self.speech.samples),
            "frames": len(mass),
            "ghost_mass": float(mass.mean()),
            "ghost_mass_speech": float(mass[speech].mean()) if speech.any() else None,
            "ghost_mass_non_speech": float(mass[~speech].mean()) if (~speech).any() else None,
            "non_speech_auc": roc_auc(mass, ~speech) if both and self.ghosts else None,
        }


def explain(model: EmbeddingModel, wave: np.ndarray, vad: VadOptions | None = None, name: str = "<audio>"
            ) -> Explanation:
    """The VAD's and the pooling's view of ``wave`` (16 kHz); the model must pool with (Ghost/Net)VLAD."""
    assignments = model.frame_assignments(wave, name)
    if assignments is None:
        raise ConfigError(f"explain shows the cluster assignments of a ghostvlad or netvlad pooling; this model "
                          f"pools with {model.config.pooling.name}")
    detector = VoiceActivityDetector(vad)
    probability = detector.probabilities(wave)
    speech = detector.segments(wave)
    return Explanation(wave, speech, probability, assignments, model.config.pooling.clusters, model.frame_seconds,
                       model.sample_rate)


def plot_explanation(explanation: Explanation, path: str | Path, title: str = "") -> Path:
    """Write the four-panel PNG of :func:`explain` to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    e = explanation
    seconds = len(e.wave) / e.sample_rate
    fig = Figure(figsize=(min(24.0, 6.0 + 0.6 * seconds), 10), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1, 2.2, 1.3]})
    spec = _log_spectrogram(e.wave)  # (bins, frames) dB
    axes[0].imshow(spec, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, e.sample_rate / 2000),
                   vmin=spec.max() - 80, vmax=spec.max())
    axes[0].set_ylabel("kHz")
    axes[0].set_title(title or "spectrogram, VAD speech segments (green)")
    vad_times = (np.arange(len(e.speech_probability)) + 0.5) * VoiceActivityDetector.frame_seconds
    axes[1].plot(vad_times, e.speech_probability, color="tab:green", lw=1)
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("P(speech)")
    cluster_map = axes[2].imshow(e.assignments, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                                 interpolation="nearest", extent=(0, e.assignments.shape[1] * e.frame_seconds,
                                                                  -0.5, e.assignments.shape[0] - 0.5))
    if e.ghosts:
        axes[2].axhline(e.clusters - 0.5, color="white", lw=1.5)
    axes[2].set_yticks(range(e.assignments.shape[0]),
                       [f"k{i + 1}" for i in range(e.clusters)] + [f"ghost {i + 1}" for i in range(e.ghosts)])
    axes[2].set_ylabel("assignment")
    fig.colorbar(cluster_map, cax=axes[2].inset_axes((1.005, 0.0, 0.008, 1.0)))  # outside: the time axes align
    summary = e.summary()
    axes[3].step(e.frame_times, e.frame_ghost_mass, where="mid", color="tab:red", lw=1.2)
    axes[3].axhline(summary["ghost_mass"], color="tab:red", ls="--", lw=0.8)
    axes[3].set_ylim(0, 1)
    axes[3].set_ylabel("ghost mass")
    axes[3].set_xlabel("seconds")
    auc = summary["non_speech_auc"]
    axes[3].set_title(f"ghost mass per frame (dashed: recording mean {summary['ghost_mass']:.3f}"
                      + (f"; AUC for non-speech frames {auc:.3f}" if auc is not None else "") + ")", fontsize=9)
    for start, end in e.speech.samples / e.sample_rate:
        axes[0].plot([start, end], [e.sample_rate / 2000 * 0.97] * 2, color="lime", lw=4, solid_capstyle="butt")
        for ax in (axes[1], axes[3]):
            ax.axvspan(start, end, color="tab:green", alpha=0.12, lw=0)
    axes[3].set_xlim(0, seconds)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _log_spectrogram(wave: np.ndarray) -> np.ndarray:
    """(201, frames) power in dB of 25 ms Hann frames every 10 ms."""
    padded = np.pad(wave.astype(np.float64), (SPECTROGRAM_WINDOW // 2, SPECTROGRAM_WINDOW // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, SPECTROGRAM_WINDOW)[::SPECTROGRAM_HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(SPECTROGRAM_WINDOW), axis=1)) ** 2  # (frames, 201)
    return 10 * np.log10(power.T + 1e-12)
