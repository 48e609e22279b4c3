import numpy as np
import pytest
import soundfile as sf
from conftest import tone, write_wav

from speakervlad import audio
from speakervlad.audio import load_audio
from speakervlad.errors import AudioError


def test_resamples_8k_to_16k_keeping_pitch(tmp_path):
    rate = 8000
    t = np.arange(rate) / rate
    path = write_wav(tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and len(wave) == 16000
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 440) < 2
    # band-limited: nothing above the old Nyquist
    assert spectrum[int(4200 * len(wave) / 16000):].max() < 1e-2 * spectrum.max()


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = tone(1.0, seed=1), tone(1.0, freq=300, seed=2)
    path = tmp_path / "stereo.flac"
    sf.write(str(path), np.stack([left, right], axis=1), 16000)
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-4)


def test_arrays_and_bytes(tmp_path):
    wave = tone(1.0)
    assert load_audio(wave, sample_rate=16000).shape == (16000,)
    ints = (wave * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(ints, sample_rate=16000), wave, atol=1e-3)
    data = write_wav(tmp_path / "b.wav", wave).read_bytes()
    np.testing.assert_allclose(load_audio(data), wave, atol=1e-4)
    with pytest.raises(AudioError, match="sample_rate"):
        load_audio(wave)


def _truncated(path):
    write_wav(path, tone(1.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "name, make, problem",
    [
        ("missing.wav", lambda p: None, "no such file"),
        ("empty.wav", lambda p: p.write_bytes(b""), "empty file"),
        ("zero.wav", lambda p: sf.write(str(p), np.zeros(0, np.float32), 16000), "zero-length"),
        ("silent.wav", lambda p: write_wav(p, np.zeros(16000, np.float32)), "silent"),
        ("nan.wav", lambda p: sf.write(str(p), np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT"),
         "NaN or infinite"),
        ("truncated.wav", _truncated, "truncated"),
        ("garbage.wav", lambda p: p.write_bytes(b"RIFF" + bytes(range(256)) * 4), "corrupt"),
        ("notes.txt", lambda p: p.write_text("hello, not audio at all\n" * 20), "unsupported or corrupt"),
        ("short.wav", lambda p: write_wav(p, tone(0.05)), "too short"),
    ],
)
def test_bad_audio_names_file_and_problem(tmp_path, monkeypatch, name, make, problem):
    monkeypatch.setattr(audio, "ffmpeg_available", lambda: False)
    path = tmp_path / name
    make(path)
    with pytest.raises(AudioError) as err:
        load_audio(path, min_seconds=0.1)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_m4a_without_ffmpeg_names_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "ffmpeg_available", lambda: False)
    path = tmp_path / "clip.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(100))
    with pytest.raises(AudioError, match="needs ffmpeg"):
        load_audio(path)


@pytest.mark.skipif(not audio.ffmpeg_available(), reason="ffmpeg not installed")
def test_m4a_through_ffmpeg(tmp_path):
    import subprocess

    src = write_wav(tmp_path / "src.wav", tone(1.0, rate=44100), 44100)
    dst = tmp_path / "clip.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c:a", "aac", str(dst)], check=True)
    wave = load_audio(dst)
    assert abs(len(wave) - 16000) < 2048  # AAC priming/padding
    assert np.sqrt(np.mean(wave**2)) > 0.01
