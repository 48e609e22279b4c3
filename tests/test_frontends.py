import librosa
import numpy as np
import pytest
import torch
import torchaudio.compliance.kaldi as kaldi
from conftest import tone

from speakervlad.config import FrontendConfig
from speakervlad.errors import ConfigError
from speakervlad.models.frontends import build_frontend


def _batch(waves):
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = torch.from_numpy(w)
    return batch, lengths


WAVES = [tone(1.03, seed=1), tone(0.61, freq=310, seed=2)]


def test_spectrogram_magnitude_equals_librosa():
    fe = build_frontend(FrontendConfig(name="spectrogram", normalize="none"))
    feats, frames = fe(*_batch(WAVES))
    assert feats.shape[1] == 257
    for i, wave in enumerate(WAVES):
        ref = np.abs(librosa.stft(wave, n_fft=512, hop_length=160, win_length=400, window="hann", center=True,
                                  pad_mode="constant"))
        assert int(frames[i]) == ref.shape[1]
        np.testing.assert_allclose(feats[i, :, : ref.shape[1]].numpy(), ref, atol=1e-4)
        assert not feats[i, :, ref.shape[1]:].any()


def test_spectrogram_frame_and_bin_normalisation():
    raw = build_frontend(FrontendConfig(name="spectrogram", normalize="none"))
    frame = build_frontend(FrontendConfig(name="spectrogram", normalize="frame"))
    per_bin = build_frontend(FrontendConfig(name="spectrogram", normalize="bin"))
    wave = torch.from_numpy(WAVES[0])[None]
    mag = raw(wave)[0][0].numpy().astype(np.float64)
    expected = (mag - mag.mean(0, keepdims=True)) / (mag.std(0, keepdims=True) + 1e-5)  # reference code
    np.testing.assert_allclose(frame(wave)[0][0].numpy(), expected, atol=1e-4)
    expected = (mag - mag.mean(1, keepdims=True)) / (mag.std(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(per_bin(wave)[0][0].numpy(), expected, atol=1e-3)


def test_log_spectrogram_is_log_librosa_magnitude_then_normalised():
    fe = build_frontend(FrontendConfig(name="spectrogram", compression="log", normalize="frame"))
    feats, frames = fe(*_batch(WAVES))
    for i, wave in enumerate(WAVES):
        mag = np.abs(librosa.stft(wave, n_fft=512, hop_length=160, win_length=400, window="hann", center=True,
                                  pad_mode="constant")).astype(np.float64)
        log = np.log(np.maximum(mag, 1e-6))
        expected = (log - log.mean(0, keepdims=True)) / (log.std(0, keepdims=True) + 1e-5)
        np.testing.assert_allclose(feats[i, :, : mag.shape[1]].numpy(), expected, atol=1e-3)
        assert not feats[i, :, mag.shape[1]:].any()  # padding stays zero
    louder = fe(torch.from_numpy(WAVES[0] * 8)[None])[0]  # a gain is a constant in the log: normalised away
    np.testing.assert_allclose(louder[0].numpy(), feats[0, :, : louder.shape[-1]].numpy(), atol=1e-3)


def test_fbank_equals_kaldi_batched():
    fe = build_frontend(FrontendConfig(name="fbank", n_mels=80, normalize="none"))
    feats, frames = fe(*_batch(WAVES))
    for i, wave in enumerate(WAVES):
        ref = kaldi.fbank(torch.from_numpy(wave)[None] * 32768, num_mel_bins=80, dither=0.0).T
        assert int(frames[i]) == ref.shape[1]
        np.testing.assert_allclose(feats[i, :, : ref.shape[1]].numpy(), ref.numpy(), atol=1e-3)


def test_fbank_mean_normalisation_uses_valid_frames_only():
    fe = build_frontend(FrontendConfig(name="fbank", normalize="mean"))
    feats, frames = fe(*_batch(WAVES))
    short = feats[1, :, : int(frames[1])]
    np.testing.assert_allclose(short.mean(-1).numpy(), 0, atol=1e-4)
    assert not feats[1, :, int(frames[1]):].any()


def test_unknown_frontend_and_mode():
    with pytest.raises(ConfigError, match="spectrogram"):
        build_frontend(FrontendConfig(name="mfcc"))
    with pytest.raises(ConfigError, match="mean|none"):
        build_frontend(FrontendConfig(name="fbank", normalize="frame"))
    with pytest.raises(ConfigError, match="none|log"):
        build_frontend(FrontendConfig(name="spectrogram", compression="sqrt"))
    with pytest.raises(ConfigError, match="log-mel already"):
        build_frontend(FrontendConfig(name="fbank", normalize="mean", compression="log"))
