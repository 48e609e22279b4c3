"""Synthetic speech-like voices: a source-filter model with speaker identity in its parameters.

A speaker is a :class:`Voice` whose identity lives in parameters a real voice
has: mean F0 and its range, vocal-tract length (all formants scaled by one
factor) with personal formant offsets, bandwidths and a piriform-sinus
anti-resonance, glottal open quotient and spectral tilt, breathiness, jitter,
shimmer and speaking rate. Every utterance draws new content (random syllables:
vowels with formant transitions, fricatives, plosives, nasals, pauses), new
prosody (declination, accents, drift, a shifted F0 and rate) and a new channel
(level, EQ, band limits, additive noise at a random SNR), so a file's identity
is not trivial to read off. :mod:`speakervlad.data.synth_corpus` writes corpora.

Fast without per-sample Python loops: the glottal pulse train comes from phase
accumulation, and the time-varying vocal tract is applied frame by frame in the
STFT domain (32 ms Hann frames, 75 % overlap, perfect reconstruction).

Synthetic audio proves that the pipeline learns; it says nothing about
accuracy on real speech.

>>> voice = draw_voice(np.random.default_rng(0), "spk0001")
>>> wave = synthesize_utterance(voice, np.random.default_rng(1), seconds=1.0)
>>> wave.shape, wave.dtype
((16000,), dtype('float32'))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import next_fast_len

#: F1-F4 (Hz) of ten English vowels, adult male (Peterson & Barney 1952; F4 approximate)
VOWELS = np.array([
    [270, 2290, 3010, 3500], [390, 1990, 2550, 3500], [530, 1840, 2480, 3500],
    [660, 1720, 2410, 3500], [730, 1090, 2440, 3400], [570, 840, 2410, 3400],
    [440, 1020, 2240, 3350], [300, 870, 2240, 3350], [640, 1190, 2390, 3450],
    [490, 1350, 1690, 3300],
], dtype=np.float64)  # (10, 4)
NASALS = np.array([[280, 1250, 2300, 3300], [280, 1600, 2600, 3400]], dtype=np.float64)  # m, n
BANDWIDTHS = np.array([70.0, 100.0, 140.0, 200.0, 300.0])  # F1-F5, Hz
F5_HZ = 4500.0
#: noise sources, adult male reference: centre Hz, bandwidth Hz, level (levels fitted to real speech LTAS)
FRICATIVES = np.array([[5500, 2000, 2.5], [3000, 1500, 2.2], [4500, 6000, 0.8], [6000, 5000, 0.6]])
BURSTS = np.array([[900, 1500, 2.0], [4000, 3000, 2.4], [2200, 1500, 2.4]])  # p/b, t/d, k/g
#: speaker spread of the personal formant factors (log sd, F1-F4; higher formants are more personal)
OFFSET_SD = np.array([0.05, 0.06, 0.08, 0.10])
TILT_RANGE = (-3.0, 2.0)  # speaker spread of the extra source tilt (dB/octave)
#: correction for the resonators left out above F5 (dB/octave above 1 kHz), fitted to real speech LTAS
HIGH_POLE_DB = 8.0
TILT_SD = 0.5  # utterance-to-utterance sd of the source tilt (dB/octave)
#: channel ranges: EQ bump gain (+-dB), SNR (dB), level (dBFS, speech RMS), low and high cut (Hz)
EQ_DB, SNR_DB, LEVEL_DB = 3.0, (25.0, 45.0), (-32.0, -14.0)
LOW_CUT_HZ, HIGH_CUT_HZ = (50.0, 200.0), (3400.0, 7600.0)
NOISE_SLOPE = (0.25, 0.75)  # noise amplitude spectrum ~ f ** -slope (0: white, 0.5: pink)

TSV_COLUMNS = {
    "speaker_id": "speaker directory name",
    "sex": "female or male (sets the F0 and vocal-tract distributions)",
    "f0_hz": "mean fundamental frequency (Hz)",
    "f0_range_st": "F0 excursion scale (semitones): declination, accents, drift",
    "vtl_factor": "formant scaling (>1: shorter vocal tract, higher formants)",
    "formant_offsets": "personal factors on F1,F2,F3,F4 on top of vtl_factor",
    "bandwidth_factor": "scaling of the formant bandwidths",
    "sinus_zero_hz": "anti-resonance of the piriform sinuses (Hz), a personal high-band cue",
    "open_quotient": "glottal open phase as a fraction of the period",
    "tilt_db_per_octave": "extra spectral tilt of the glottal source above 300 Hz",
    "breathiness": "aspiration noise mixed into voicing (relative amplitude)",
    "jitter": "cycle-to-cycle period perturbation (relative std)",
    "shimmer": "cycle-to-cycle amplitude perturbation (relative std)",
    "syllables_per_s": "mean speaking rate",
}


@dataclass(frozen=True)
class Voice:
    """The identity of one synthetic speaker (see ``TSV_COLUMNS`` for units)."""

    speaker_id: str
    sex: str
    f0_hz: float
    f0_range_st: float
    vtl_factor: float
    formant_offsets: tuple[float, float, float, float]
    bandwidth_factor: float
    sinus_zero_hz: float
    open_quotient: float
    tilt_db_per_octave: float
    breathiness: float
    jitter: float
    shimmer: float
    syllables_per_s: float


def draw_voice(rng: np.random.Generator, speaker_id: str) -> Voice:
    """Draw a speaker from adult-like distributions (F0 85-255 Hz, VTL factor 0.8-1.2)."""
    female = bool(rng.random() < 0.5)
    f0 = np.clip(rng.normal(205, 22), 150, 255) if female else np.clip(rng.normal(118, 17), 85, 170)
    vtl = np.clip(rng.normal(1.12, 0.04), 1.0, 1.2) if female else np.clip(rng.normal(0.94, 0.05), 0.8, 1.06)
    offsets = np.exp(rng.normal(0.0, OFFSET_SD))
    return Voice(
        speaker_id=speaker_id, sex="female" if female else "male",
        f0_hz=round(float(f0), 2), f0_range_st=round(float(rng.uniform(1.0, 3.5)), 3),
        vtl_factor=round(float(vtl), 4), formant_offsets=tuple(round(float(o), 4) for o in offsets),
        bandwidth_factor=round(float(rng.uniform(0.7, 1.5)), 3),
        sinus_zero_hz=round(float(rng.uniform(4000.0, 5000.0) * vtl), 1),
        open_quotient=round(float(rng.uniform(0.45, 0.75)), 3),
        tilt_db_per_octave=round(float(rng.uniform(*TILT_RANGE)), 2),
        breathiness=round(float(rng.uniform(0.02, 0.3) * (1.3 if female else 1.0)), 3),
        jitter=round(float(rng.uniform(0.003, 0.015)), 4),
        shimmer=round(float(rng.uniform(0.02, 0.08)), 4),
        syllables_per_s=round(float(rng.uniform(3.5, 6.5)), 2),
    )


def synthesize_utterance(voice: Voice, rng: np.random.Generator, seconds: float,
                         sample_rate: int = 16000) -> np.ndarray:
    """One utterance of ``voice``: new content, prosody and channel; float32 ``(N,)``, |x| < 1."""
    n = int(round(seconds * sample_rate))
    n_fft = int(2 ** round(np.log2(0.032 * sample_rate)))
    hop = n_fft // 4
    frame_at = _frame_centres(n, n_fft, hop)  # (T,) samples
    n_frames = len(frame_at)
    tracks = _plan(voice, rng, frame_at / sample_rate, n / sample_rate)
    f0 = voice.f0_hz * 2 ** (rng.normal(0.0, 0.7) / 12)  # this utterance's pitch (day-to-day variation)
    tilt = voice.tilt_db_per_octave + rng.normal(0.0, TILT_SD)
    breath = voice.breathiness * np.exp(rng.normal(0.0, 0.2))
    samples = np.arange(n)
    log2_f0 = np.log2(f0) + _f0_contour(voice, rng, tracks["accent"]) / 12
    f0_s = 2 ** np.interp(samples, frame_at, log2_f0)  # (N,)
    flow = _glottal_flow(voice, rng, f0_s, sample_rate)  # (N,)
    v_env = np.interp(samples, frame_at, tracks["voice"])
    pulses = np.diff(flow, prepend=0.0)  # lip radiation: flow derivative
    pulses /= np.sqrt(np.mean(pulses[v_env > 0.5] ** 2)) if np.any(v_env > 0.5) else 1.0
    asp = breath * v_env * (0.4 + flow / max(flow.max(), 1e-9)) + np.interp(samples, frame_at, tracks["asp"])
    excitation = pulses * v_env + rng.standard_normal(n) * asp
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)  # (F,)
    formants = np.concatenate([tracks["formants"] * voice.vtl_factor * np.array(voice.formant_offsets),
                               np.full((n_frames, 1), F5_HZ * voice.vtl_factor)], axis=1)  # (T, 5)
    bandwidths = np.broadcast_to(BANDWIDTHS * voice.bandwidth_factor, formants.shape)
    tilt_gain = 10 ** ((tilt * np.log2(np.maximum(freqs, 300.0) / 300.0)
                       + HIGH_POLE_DB * np.log2(np.maximum(freqs, 1000.0) / 1000.0)) / 20)  # (F,)
    sinus = 1 / _resonators(np.array([[voice.sinus_zero_hz]]), np.array([[400.0]]), freqs, sample_rate)  # (1, F)
    tract = _resonators(formants, bandwidths, freqs, sample_rate) * tilt_gain * sinus  # (T, F)
    voiced = _istft(_stft(excitation, n_fft, hop) * tract, n, n_fft, hop)
    voiced /= np.sqrt(np.mean(voiced[v_env > 0.5] ** 2)) if np.any(v_env > 0.5) else 1.0
    fc = np.minimum(tracks["fc"] * voice.vtl_factor, 0.42 * sample_rate)[:, None]  # (T, 1)
    high_pass = 1 / np.sqrt(1 + (0.5 * fc / np.maximum(freqs, 1.0)) ** 4)  # (T, F): noise lives above fc / 2
    shaper = _resonators(fc, tracks["bw"][:, None], freqs, sample_rate) * high_pass  # (T, F)
    peak = np.abs(_resonators(fc, tracks["bw"][:, None], fc, sample_rate))  # (T, 1)
    noise = rng.standard_normal(n) * np.interp(samples, frame_at, tracks["fric"])
    fricated = _istft(_stft(noise, n_fft, hop) * shaper / peak, n, n_fft, hop)
    return apply_channel(voiced + fricated, rng, sample_rate)


def apply_channel(wave: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A random recording channel: EQ, band limits, coloured noise, level (ranges above)."""
    n_fft = int(2 ** round(np.log2(0.032 * sample_rate)))
    hop = n_fft // 4
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)  # (F,)
    octave = np.log2(np.maximum(freqs, 20.0))
    eq_db = np.zeros_like(freqs)
    for _ in range(3):
        centre = rng.uniform(np.log2(150.0), np.log2(0.4 * sample_rate))
        eq_db += rng.uniform(-EQ_DB, EQ_DB) * np.exp(-0.5 * ((octave - centre) / rng.uniform(0.4, 1.5)) ** 2)
    low_cut = np.exp(rng.uniform(*np.log(LOW_CUT_HZ)))
    high_cut = rng.uniform(min(HIGH_CUT_HZ[0], 0.4 * sample_rate), min(HIGH_CUT_HZ[1], 0.475 * sample_rate))
    band = 1 / np.sqrt(1 + (low_cut / np.maximum(freqs, 1.0)) ** 4) / np.sqrt(1 + (freqs / high_cut) ** 8)
    wave = _istft(_stft(wave, n_fft, hop) * (10 ** (eq_db / 20) * band), len(wave), n_fft, hop)
    active = _active_rms(wave, hop)
    size = next_fast_len(len(wave), real=True)
    spectrum = np.fft.rfft(rng.standard_normal(size))
    spectrum *= np.maximum(np.fft.rfftfreq(size, 1.0 / sample_rate), 50.0) ** (-rng.uniform(*NOISE_SLOPE))
    noise = np.fft.irfft(spectrum, n=size)[: len(wave)]
    snr_db = rng.uniform(*SNR_DB)
    wave = wave + noise * active / np.sqrt(np.mean(noise ** 2)) * 10 ** (-snr_db / 20)
    gain = 10 ** (rng.uniform(*LEVEL_DB) / 20) / max(_active_rms(wave, hop), 1e-12)
    gain = min(gain, 0.95 / max(float(np.abs(wave).max()), 1e-12))
    return (wave * gain).astype(np.float32)


def _plan(voice: Voice, rng: np.random.Generator, times: np.ndarray, seconds: float) -> dict[str, np.ndarray]:
    """Random syllables as control tracks at frame ``times`` (s): amplitudes, formants, noise, accents."""
    frame_s = times[1] - times[0]
    rate = voice.syllables_per_s * np.exp(rng.normal(0.0, 0.08))
    syl = 1.0 / rate
    rows: list[tuple[float, float, float, float, float, float, float]] = []  # s, voice, fric, asp, fc, bw, accent
    targets: list[tuple[float, np.ndarray]] = []  # (seconds at the middle, F1-F4)
    clock = [0.0]

    def add(seconds: float, v: float = 0.0, f: float = 0.0, a: float = 0.0, fc: float = 1000.0,
            bw: float = 1000.0, accent: float = 0.0, target: np.ndarray | None = None) -> None:
        seconds = max(seconds, frame_s)
        if target is not None:
            targets.append((clock[0] + seconds / 2, target))
        rows.append((seconds, v, f, a, fc, bw, accent))
        clock[0] += seconds

    def consonant() -> None:
        kind = rng.choice(4, p=[0.35, 0.35, 0.2, 0.1])
        if kind == 0:  # fricative, sometimes voiced
            centre, width, level = FRICATIVES[rng.integers(len(FRICATIVES))]
            add(syl * rng.uniform(0.2, 0.35), v=0.3 * (rng.random() < 0.4), f=level, fc=centre, bw=width)
        elif kind == 1:  # plosive: closure (voice bar if voiced), burst, aspiration if voiceless
            centre, width, level = BURSTS[rng.integers(len(BURSTS))]
            voiced = rng.random() < 0.5
            add(syl * rng.uniform(0.12, 0.22), v=0.08 * voiced)
            add(0.015, f=level, fc=centre, bw=width)
            if not voiced:
                add(syl * rng.uniform(0.08, 0.15), a=0.5)
        elif kind == 2:  # nasal murmur
            add(syl * rng.uniform(0.15, 0.25), v=0.3, target=NASALS[rng.integers(len(NASALS))])
        else:  # /h/
            add(syl * rng.uniform(0.15, 0.25), a=0.6)

    margin = min(1.0, seconds / 2)  # silence before and after, shorter in short files
    add(rng.uniform(0.05, 0.25) * margin)
    budget = seconds - rng.uniform(0.05, 0.25) * margin
    first_vowel_end = 0.0
    while clock[0] < budget or not first_vowel_end:  # at least one syllable
        if rng.random() < 0.75:
            consonant()
        stressed = rng.random() < 0.3
        vowel = VOWELS[rng.integers(len(VOWELS))] * np.exp(rng.normal(0.0, 0.03, size=4))
        add(syl * rng.uniform(0.35, 0.6) * (1.5 if stressed else 1.0), v=1.0,
            accent=rng.uniform(0.5, 1.5) * stressed, target=vowel)
        first_vowel_end = first_vowel_end or clock[0]
        if rng.random() < 0.3:
            consonant()
        if rng.random() < 0.1:
            add(rng.uniform(0.1, 0.35))
    table = np.array(rows)  # (S, 7)
    ends = np.cumsum(table[:, 0])
    index = np.minimum(np.searchsorted(ends, times, side="right"), len(table) - 1)
    keep = (times >= 0) & (times < min(ends[-1], max(budget, first_vowel_end) + frame_s))  # trailing silence
    frames = table[index]  # (T, 7)
    smooth = np.array([0.1, 0.2, 0.4, 0.2, 0.1])
    tracks = {name: np.convolve(frames[:, col] * keep, smooth, mode="same")
              for col, name in ((1, "voice"), (2, "fric"), (3, "asp"))}
    tracks["fc"], tracks["bw"] = frames[:, 4], frames[:, 5]
    tracks["accent"] = frames[:, 6] * keep
    knots, values = np.array([t for t, _ in targets]), np.stack([v for _, v in targets])  # (K,), (K, 4)
    tracks["formants"] = np.stack([np.interp(times, knots, values[:, k]) for k in range(4)], axis=1)  # (T, 4)
    return tracks


def _f0_contour(voice: Voice, rng: np.random.Generator, accent: np.ndarray) -> np.ndarray:
    """Semitones around the mean per frame: declination + smoothed accents + slow drift."""
    n = len(accent)
    span = voice.f0_range_st
    declination = -rng.uniform(0.5, 1.5) * span * (np.arange(n) / max(n - 1, 1) - 0.5)
    kernel = np.hanning(13) / np.hanning(13).sum()
    accents = np.convolve(accent, kernel, mode="same") * span
    knots = rng.normal(0.0, 0.3 * span, size=n // 25 + 2)
    drift = np.interp(np.arange(n), np.linspace(0, n - 1, len(knots)), knots)
    return declination + accents + drift


def _glottal_flow(voice: Voice, rng: np.random.Generator, f0: np.ndarray, sample_rate: int) -> np.ndarray:
    """Rosenberg glottal flow per sample, with per-cycle jitter (period) and shimmer (amplitude)."""
    cycle = np.cumsum(f0 / sample_rate).astype(np.int64)
    period_scale = 1.0 + voice.jitter * rng.standard_normal(cycle[-1] + 2)
    phase = np.cumsum(f0 * period_scale[cycle] / sample_rate)
    cycle = phase.astype(np.int64)
    frac = phase - cycle
    rise, fall = 0.6 * voice.open_quotient, 0.4 * voice.open_quotient
    flow = np.where(frac < rise, 0.5 * (1 - np.cos(np.pi * frac / rise)), 0.0)
    closing = (frac >= rise) & (frac < rise + fall)
    flow[closing] = np.cos(0.5 * np.pi * (frac[closing] - rise) / fall)
    amplitude = np.maximum(1.0 + voice.shimmer * rng.standard_normal(cycle[-1] + 1), 0.2)
    return flow * amplitude[cycle]


def _resonators(centres: np.ndarray, widths: np.ndarray, freqs: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cascade of unity-DC-gain two-pole resonators: ``(T, K)`` centres and bandwidths (Hz).

    Evaluated at ``freqs`` ``(F,)`` -> ``(T, F)``, or at one frequency per row ``(T, 1)`` -> ``(T, 1)``.
    Resonators above 0.45 * sample_rate are left out (they would alias). Single precision: speed.
    """
    keep = centres < 0.45 * sample_rate
    r = np.exp(-np.pi * widths / sample_rate)
    a1 = np.where(keep, -2 * r * np.cos(2 * np.pi * centres / sample_rate), 0.0).astype(np.float32)  # (T, K)
    a2 = np.where(keep, r ** 2, 0.0).astype(np.float32)
    z1 = np.exp(-2j * np.pi * freqs / sample_rate).astype(np.complex64)  # (F,) | (T, 1)
    z2 = z1 ** 2
    den = np.ones(np.broadcast_shapes(a1[:, :1].shape, z1.shape), dtype=np.complex64)  # (T, F)
    for k in range(centres.shape[1]):
        den *= 1 + a1[:, k: k + 1] * z1 + a2[:, k: k + 1] * z2
    return (1 + a1 + a2).prod(axis=1, keepdims=True) / den


def _frame_centres(n: int, n_fft: int, hop: int) -> np.ndarray:
    """Centres (samples) of the frames of :func:`_stft`: every sample lies in ``n_fft // hop`` frames."""
    count = (n - 1 + n_fft - hop) // hop + 1
    return np.arange(count) * hop - (n_fft // 2 - hop)


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Hann-windowed frames (see :func:`_frame_centres`) -> ``(T, n_fft // 2 + 1)``."""
    padded = np.pad(x, (n_fft - hop, n_fft))
    count = len(_frame_centres(len(x), n_fft, hop))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:count]
    return np.fft.rfft(frames * _window(n_fft), axis=1)


def _istft(spec: np.ndarray, n: int, n_fft: int, hop: int) -> np.ndarray:
    """Weighted overlap-add inverse of :func:`_stft` (75% overlap), ``(T, F)`` -> ``(n,)``."""
    window = _window(n_fft)
    frames = (np.fft.irfft(spec, n=n_fft, axis=1) * window).reshape(len(spec), n_fft // hop, hop)
    out = np.zeros((len(spec) + n_fft // hop - 1, hop))
    for j in range(n_fft // hop):
        out[j: j + len(spec)] += frames[:, j]
    return out.ravel()[n_fft - hop: n_fft - hop + n] / (np.sum(window ** 2) / hop)


def _window(n_fft: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann


def _active_rms(wave: np.ndarray, hop: int) -> float:
    """RMS over the frames within 30 dB of the loudest (speech, not pauses)."""
    energy = np.mean(wave[: len(wave) // hop * hop].reshape(-1, hop) ** 2, axis=1)
    return float(np.sqrt(np.mean(energy[energy > energy.max() * 1e-3]))) if energy.max() > 0 else 0.0
