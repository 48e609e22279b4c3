"""Write a synthetic multi-speaker corpus (``speakervlad synth``), the toolkit's built-in default data.

Layout: ``OUT/<speaker_id>/uttNNNN.wav`` (16-bit PCM mono), ``speakers.tsv`` (every
voice's parameters, columns in :data:`speakervlad.data.synth.TSV_COLUMNS`),
``README.txt`` (says it is synthetic) and ``synth.json`` (the settings).
Speaker ``i`` depends only on ``(seed, i)`` and utterance ``u`` of it only on
``(seed, i, u)``, so the bytes do not depend on the number of worker processes.
Files are written under a temporary name and renamed: a re-run with the same
settings completes an interrupted one.

>>> spec = CorpusSpec(speakers=2, utterances=3)
>>> [v.speaker_id for v in corpus_voices(spec)]
['spk0001', 'spk0002']
"""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from ..errors import ConfigError
from .synth import TSV_COLUMNS, Voice, draw_voice, synthesize_utterance

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CorpusSpec:
    """What ``generate_corpus`` writes; the same spec always gives the same bytes."""

    speakers: int
    utterances: int
    seconds_min: float = 2.0
    seconds_max: float = 4.0
    seed: int = 0
    sample_rate: int = 16000

    def validate(self) -> None:
        if self.speakers < 1 or self.utterances < 1:
            raise ConfigError("--speakers and --utterances must be at least 1")
        if not 0.2 <= self.seconds_min <= self.seconds_max:
            raise ConfigError("need 0.2 <= --seconds-min <= --seconds-max "
                              f"(got {self.seconds_min}, {self.seconds_max})")
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0 (got {self.seed})")
        if not 8000 <= self.sample_rate <= 48000:
            raise ConfigError(f"--sample-rate must be 8000..48000 Hz (got {self.sample_rate})")


def speaker_ids(count: int) -> list[str]:
    """``spk0001`` ... (wider when ``count`` needs more digits)."""
    width = max(4, len(str(count)))
    return [f"spk{i:0{width}d}" for i in range(1, count + 1)]


def corpus_voices(spec: CorpusSpec) -> list[Voice]:
    """The speakers of a corpus; speaker ``i`` depends only on ``(seed, i)``."""
    return [draw_voice(np.random.default_rng([spec.seed, 0, i]), sid)
            for i, sid in enumerate(speaker_ids(spec.speakers))]


def corpus_utterance(spec: CorpusSpec, voice: Voice, speaker: int, utterance: int) -> np.ndarray:
    """Utterance ``utterance`` of speaker index ``speaker``; depends only on the spec and indices."""
    rng = np.random.default_rng([spec.seed, 1, speaker, utterance])
    return synthesize_utterance(voice, rng, rng.uniform(spec.seconds_min, spec.seconds_max),
                                spec.sample_rate)


def generate_corpus(out: str | Path, spec: CorpusSpec, jobs: int = 1) -> dict[str, float]:
    """Write ``out/<speaker>/uttNNNN.wav``, ``speakers.tsv``, ``README.txt`` and ``synth.json``.

    Resumable: each file is written under a temporary name and renamed, and files
    already there are kept. Returns counts: ``written``, ``skipped``, ``seconds`` (audio written).
    """
    spec.validate()
    out = Path(out)
    _claim_directory(out, spec)
    voices = corpus_voices(spec)
    _write_text(out / "speakers.tsv", _speakers_tsv(voices))
    _write_text(out / "README.txt", _readme(spec))
    tasks = [(spec, voice, s, u, str(out / voice.speaker_id / f"utt{u + 1:04d}.wav"))
             for s, voice in enumerate(voices) for u in range(spec.utterances)]
    todo = [task for task in tasks if not Path(task[4]).exists()]
    for voice in voices:
        (out / voice.speaker_id).mkdir(exist_ok=True)
    log.info("synth: %d files to write, %d already in %s", len(todo), len(tasks) - len(todo), out)
    with tqdm(total=len(todo), desc="synth", unit="file", disable=None) as bar:
        if jobs <= 1 or len(todo) < 2:
            durations = [_bar_step(bar, _write_utterance(task)) for task in todo]
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                durations = [_bar_step(bar, d) for d in pool.map(_write_utterance, todo, chunksize=4)]
    return {"written": len(todo), "skipped": len(tasks) - len(todo), "seconds": float(sum(durations))}


def _bar_step(bar: tqdm, value: float) -> float:
    bar.update(1)
    return value


def _write_utterance(task: tuple[CorpusSpec, Voice, int, int, str]) -> float:
    spec, voice, speaker, utterance, path = task
    wave = corpus_utterance(spec, voice, speaker, utterance)
    partial = f"{path}.partial"
    sf.write(partial, wave, spec.sample_rate, subtype="PCM_16", format="WAV")
    os.replace(partial, path)
    return len(wave) / spec.sample_rate


def _claim_directory(out: Path, spec: CorpusSpec) -> None:
    """Refuse to mix corpora: ``out`` must be new, empty, or hold this very spec."""
    stamp = out / "synth.json"
    wanted = {"format_version": FORMAT_VERSION, **asdict(spec)}
    if stamp.exists():
        found = json.loads(stamp.read_text())
        if found != wanted:
            settings = ", ".join(f"{key}={value}" for key, value in found.items())
            raise ConfigError(f"{out} holds a corpus generated with other settings ({settings}); "
                              "choose another --out or delete it")
        return
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not a synthetic corpus (no synth.json); "
                          "choose a new or empty --out directory")
    out.mkdir(parents=True, exist_ok=True)
    _write_text(stamp, json.dumps(wanted, indent=2) + "\n")


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def _speakers_tsv(voices: list[Voice]) -> str:
    lines = ["\t".join(TSV_COLUMNS)]
    for voice in voices:
        values = [",".join(map(str, v)) if isinstance(v, tuple) else str(v)
                  for v in (getattr(voice, f.name) for f in fields(voice))]
        lines.append("\t".join(values))
    return "\n".join(lines) + "\n"


def _readme(spec: CorpusSpec) -> str:
    columns = "\n".join(f"  {name:<20} {meaning}" for name, meaning in TSV_COLUMNS.items())
    return (
        "SYNTHETIC speech-like corpus written by `speakervlad synth` (speakervlad.data.synth_corpus).\n"
        "No real person speaks here. Each speaker is a source-filter voice; each file has\n"
        "random content, prosody and channel (level, EQ, band limits, noise).\n"
        "It proves that the pipeline learns; it says nothing about accuracy on real speech.\n\n"
        f"Regenerate: speakervlad synth --out DIR --speakers {spec.speakers} "
        f"--utterances {spec.utterances} --seconds-min {spec.seconds_min} "
        f"--seconds-max {spec.seconds_max} --seed {spec.seed} --sample-rate {spec.sample_rate}\n\n"
        "Layout: <speaker_id>/uttNNNN.wav (16-bit PCM mono), speakers.tsv, synth.json (settings).\n"
        f"speakers.tsv columns:\n{columns}\n"
    )
