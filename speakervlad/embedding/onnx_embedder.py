"""Embed audio with an ONNX export of a speakervlad model, with onnxruntime alone.

Nothing here imports torch: a process that only embeds with the export needs
numpy, soundfile, soxr and onnxruntime at run time (torch stays a dependency of
the package, but is never loaded).

>>> OnnxEmbedder("model.onnx").embed("speech.wav").shape        # doctest: +SKIP
(512,)

It embeds each recording whole, so its memory grows with the recording's length;
for hours-long audio use :func:`speakervlad.load_model`, which embeds in chunks
in bounded memory.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..audio import AudioSource, audio_label, load_audio
from ..errors import AudioError, ConfigError
from .vad import Vad, speech_only, vad_options

#: prefix of the model facts stored in the ONNX file's metadata by ``export_onnx``
META_PREFIX = "speakervlad."


class OnnxEmbedder:
    """Embed audio with an ONNX model from :func:`export_onnx`, using onnxruntime only.

    ``max_seconds`` guards memory: the graph embeds a recording whole, so longer
    recordings raise :class:`AudioError` (use ``speakervlad.load_model`` for them).
    """

    def __init__(self, path: str | Path, threads: int | None = None, providers: Sequence[str] | None = None,
                 max_seconds: float = 600.0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=list(providers or ["CPUExecutionProvider"]))
        meta = self.session.get_modelmeta().custom_metadata_map
        if META_PREFIX + "sample_rate" not in meta:
            raise ConfigError(f"{path}: not an ONNX model exported by speakervlad (no {META_PREFIX}* metadata)")
        self.sample_rate = int(meta[META_PREFIX + "sample_rate"])
        self.embedding_dim = int(meta[META_PREFIX + "embedding_dim"])
        self.min_seconds = int(meta[META_PREFIX + "min_samples"]) / self.sample_rate
        self.fingerprint = meta[META_PREFIX + "fingerprint"]
        self.calibration = json.loads(meta[META_PREFIX + "calibration"])
        self.max_seconds = max_seconds
        self.whole_seconds = max_seconds  # the graph embeds every recording whole

    def load(self, source: AudioSource, sample_rate: int | None = None, name: str | None = None,
             vad: Vad = None) -> np.ndarray:
        """Decode and validate audio for this model (mono, 16 kHz, long enough, not too long); with ``vad``,
        its speech alone (Silero VAD on onnxruntime: still no torch)."""
        wave = load_audio(source, sample_rate, self.sample_rate, min_seconds=self.min_seconds, name=name)
        label = audio_label(source, name)
        if len(wave) > self.max_seconds * self.sample_rate:
            seconds = len(wave) / self.sample_rate
            raise AudioError(label, f"{seconds:.0f} s is longer than max_seconds={self.max_seconds:g}: "
                             "the ONNX graph embeds a recording whole, so memory grows with its length; raise "
                             "max_seconds or use speakervlad.load_model, which embeds in chunks")
        options = vad_options(vad)
        return wave if options is None else speech_only(wave, options, label, self.min_seconds)

    def embed(self, source: AudioSource, sample_rate: int | None = None, vad: Vad = None) -> np.ndarray:
        """The (E,) embedding of one recording (path, bytes, or array + sample_rate); ``vad``: of its speech."""
        return self.embed_waveforms([self.load(source, sample_rate, vad=vad)])[0]

    def embed_many(self, sources: Sequence[AudioSource], batch_size: int = 16, vad: Vad = None) -> np.ndarray:
        """(N, E) embeddings of many recordings, batched by similar length; ``vad``: of their speech."""
        return self.embed_waveforms([self.load(s, vad=vad) for s in sources], batch_size)

    def embed_waveforms(self, waves: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """(N, E) embeddings of 16 kHz waveforms; sorted by length into padded batches."""
        out = np.zeros((len(waves), self.embedding_dim), dtype=np.float32)
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            lengths = np.array([len(waves[i]) for i in index], dtype=np.int64)
            batch = np.zeros((len(index), int(lengths.max())), dtype=np.float32)
            for row, i in enumerate(index):
                batch[row, :lengths[row]] = waves[i]
            out[index] = self.run(batch, lengths)
        return out

    def run(self, waves: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The raw graph: waves (B, N) float32, lengths (B,) int64 -> embeddings (B, E)."""
        return self.session.run(["embeddings"], {"waves": waves.astype(np.float32, copy=False),
                                                 "lengths": lengths.astype(np.int64, copy=False)})[0]
