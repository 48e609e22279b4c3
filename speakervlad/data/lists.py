"""Utterance lists: build them from a corpus layout, save and load them.

A training list is a sequence of :class:`Utterance` (key, speaker, path, speed),
built from one of three layouts and stored as a TSV file:

- VoxCeleb: ``ROOT/idXXXXX/<video>/NNNNN.wav|m4a|flac`` (:func:`scan_voxceleb`);
- a Kaldi data directory with ``wav.scp`` and ``utt2spk`` (:func:`read_kaldi_dir`);
- any folder: ``speaker/.../*.wav|flac``, a flat folder whose file names carry the
  speaker (``pattern`` with a ``(?P<speaker>...)`` group), or a list file of
  ``path speaker`` lines (:func:`scan_folder`).

:func:`build_list` picks the layout. Keys are paths relative to the corpus root
(the key convention of the trial lists); :class:`SpeakerIndex` maps speakers to
class ids. Readability checks: :mod:`speakervlad.data.readable`; held-out speakers and
trials: :mod:`speakervlad.data.heldout`.

>>> utts = [Utterance("a/1.wav", "a", "/c/a/1.wav"), Utterance("b/1.wav", "b", "/c/b/1.wav")]
>>> SpeakerIndex.from_utterances(utts).labels(utts)
array([0, 1])
>>> [u.speaker for u in add_speed_perturbation(utts[:1])]
['a', 'sp0.9-a', 'sp1.1-a']
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..audio import AUDIO_SUFFIXES
from ..errors import ConfigError

logger = logging.getLogger(__name__)

LIST_HEADER = "# speakervlad utterance list: key<TAB>speaker<TAB>path[<TAB>speed]"
_VOXCELEB_SPEAKER = re.compile(r"^id\d+$")
_SHOWN = 5  # examples named in warnings


@dataclass(frozen=True)
class Utterance:
    """One training recording: ``key`` (relative path), ``speaker``, file ``path``, ``speed``."""

    key: str
    speaker: str
    path: str
    speed: float = 1.0


def scan_voxceleb(root: str | Path) -> list[Utterance]:
    """Utterances of a VoxCeleb tree ``root/idXXXXX/<video>/NNNNN.wav|m4a|flac``.

    The key is the path relative to ``root`` (``id10001/1zcIwhmdeo4/00001.wav``),
    the speaker its first component.
    """
    root = _existing_dir(root)
    files = sorted(p for p in root.glob("*/*/*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ConfigError(
            f"{root}: no audio in the VoxCeleb layout (expected idXXXXX/<video>/NNNNN.wav|m4a|flac "
            "below this folder; for other layouts use kind='folder')"
        )
    return [_from_relative(root, path) for path in files]


def read_kaldi_dir(directory: str | Path) -> list[Utterance]:
    """Utterances of a Kaldi data directory (``wav.scp`` + ``utt2spk``).

    ``wav.scp`` must hold plain file paths (relative ones are taken from the
    current directory, as in Kaldi recipes); piped commands, archive offsets and
    ``segments`` files are unsupported. Utterances listed in only one of the two
    files are reported (logged with examples) and left out.
    """
    directory = _existing_dir(directory)
    if (directory / "segments").exists():
        raise ConfigError(
            f"{directory}: has a 'segments' file (utterances are time ranges of recordings), which "
            "is unsupported; cut the segments into files first (Kaldi extract-segments or sox)"
        )
    wavs = _read_kaldi_table(directory / "wav.scp")
    speakers = _read_kaldi_table(directory / "utt2spk")
    for utt, (entry, line) in wavs.items():
        if entry.rstrip().endswith("|") or entry.lstrip().startswith("|"):
            raise ConfigError(
                f"{directory / 'wav.scp'}:{line}: {utt!r} is a piped command ({entry!r}), which is "
                "unsupported; decode the audio to WAV/FLAC files (e.g. run the command to a file, "
                "or wav-copy scp:wav.scp ark,scp:...) and list their paths"
            )
        if re.search(r"\.ark:\d+$", entry) or " " in entry.strip():
            raise ConfigError(
                f"{directory / 'wav.scp'}:{line}: {utt!r} is not a plain file path ({entry!r}); "
                "archive offsets and commands are unsupported, list one audio file per utterance"
            )
    _report_unpaired(directory, set(wavs), set(speakers))
    utts = [
        Utterance(utt, speakers[utt][0].strip(), os.path.abspath(wavs[utt][0].strip()))
        for utt in sorted(set(wavs) & set(speakers))
    ]
    if not utts:
        raise ConfigError(f"{directory}: no utterance is listed in both wav.scp and utt2spk")
    return utts


def scan_folder(
    root: str | Path, pattern: str | None = None, speaker_list: str | Path | None = None
) -> list[Utterance]:
    """Utterances of a folder of audio files, speakers named by one of three rules.

    - default: the first path component below ``root`` (``spk/chapter/x.flac``);
    - ``pattern``: a regex searched in each file *name* with a ``(?P<speaker>...)``
      group, for flat folders (LibriSpeech ``19-198-0001.flac``: ``r"^(?P<speaker>\\d+)-"``);
    - ``speaker_list``: a file of ``path speaker`` lines, paths relative to ``root``.

    Files the rule cannot name are reported (logged with examples) and skipped.
    """
    root = _existing_dir(root)
    if speaker_list is not None:
        return _from_speaker_list(root, Path(speaker_list))
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ConfigError(f"{root}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) below it")
    if pattern is not None:
        regex = _speaker_regex(pattern)
        utts, unnamed = [], []
        for path in files:
            found = regex.search(path.name)
            if found and found.group("speaker"):
                rel = path.relative_to(root).as_posix()
                utts.append(Utterance(rel, found.group("speaker"), str(path)))
            else:
                unnamed.append(path.name)
        _report_skipped(unnamed, f"file names not matching {pattern!r}", root)
    else:
        utts = [_from_relative(root, p) for p in files if len(p.relative_to(root).parts) > 1]
        flat = [p.name for p in files if len(p.relative_to(root).parts) == 1]
        _report_skipped(flat, "files directly in the root (no speaker folder; pass a pattern?)", root)
    if not utts:
        raise ConfigError(
            f"{root}: no file could be given a speaker; use speaker folders (speaker/.../x.wav), "
            "a pattern with a (?P<speaker>...) group, or a speaker list file"
        )
    return utts


def build_list(source: str | Path, kind: str = "auto", pattern: str | None = None) -> list[Utterance]:
    """Utterances of ``source``, a corpus folder or a list file.

    ``kind``: ``voxceleb``, ``kaldi``, ``folder`` or ``auto``, which picks: a TSV list
    written by :func:`write_list`; another file as a ``path speaker`` list; a folder
    with ``wav.scp`` as Kaldi; a folder with a ``pattern`` or not in the VoxCeleb
    layout (``id\\d+`` speaker folders with files two levels down) as a folder.
    """
    source = Path(source)
    kinds = ("auto", "voxceleb", "kaldi", "folder")
    if kind not in kinds:
        raise ConfigError(f"unknown list kind {kind!r}; valid kinds: {', '.join(kinds)}")
    if not source.exists():
        raise ConfigError(f"{source}: no such file or folder")
    if kind == "auto":
        kind = _detect_kind(source, pattern)
        logger.info("%s: detected a %s source", source, kind)
    if kind == "list":
        return read_list(source)
    if kind == "voxceleb":
        return scan_voxceleb(source)
    if kind == "kaldi":
        return read_kaldi_dir(source)
    if source.is_file():
        return scan_folder(source.parent, speaker_list=source)
    return scan_folder(source, pattern=pattern)


def write_list(path: str | Path, utts: Iterable[Utterance]) -> None:
    """Write a TSV list ``key<TAB>speaker<TAB>path[<TAB>speed]`` (speed only when not 1)."""
    lines = [LIST_HEADER]
    for utt in utts:
        for field in (utt.key, utt.speaker, utt.path):
            if "\t" in field or "\n" in field:
                raise ConfigError(f"{utt.key!r}: keys, speakers and paths may not hold tabs or newlines")
        speed = "" if utt.speed == 1.0 else f"\t{utt.speed:g}"
        lines.append(f"{utt.key}\t{utt.speaker}\t{utt.path}{speed}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_list(path: str | Path) -> list[Utterance]:
    """Read a list written by :func:`write_list`; relative paths are taken from its folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such list file")
    utts, seen = [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) not in (3, 4) or not all(f.strip() for f in fields):
            raise ConfigError(
                f"{path}:{number}: expected key<TAB>speaker<TAB>path[<TAB>speed], got {line!r}"
            )
        speed = 1.0
        if len(fields) == 4:
            try:
                speed = float(fields[3])
            except ValueError:
                speed = -1.0
            if not speed > 0:
                raise ConfigError(f"{path}:{number}: speed must be a positive number, got {fields[3]!r}")
        key, speaker, audio = fields[:3]
        if key in seen:
            raise ConfigError(f"{path}:{number}: key {key!r} already used on line {seen[key]}")
        seen[key] = number
        audio_path = Path(audio) if Path(audio).is_absolute() else path.absolute().parent / audio
        utts.append(Utterance(key, speaker, str(audio_path), speed))
    return utts


class SpeakerIndex:
    """Speakers mapped to contiguous class ids (0..n-1) in sorted order.

    Saved as a text file with one speaker per line; the line number is the id.
    """

    def __init__(self, speakers: Iterable[str]):
        self.speakers: tuple[str, ...] = tuple(speakers)
        self._ids = {spk: i for i, spk in enumerate(self.speakers)}
        if len(self._ids) != len(self.speakers):
            raise ConfigError("speaker index: a speaker is listed twice")

    @classmethod
    def from_utterances(cls, utts: Iterable[Utterance]) -> SpeakerIndex:
        return cls(sorted({utt.speaker for utt in utts}))

    def index(self, speaker: str) -> int:
        try:
            return self._ids[speaker]
        except KeyError:
            raise ConfigError(
                f"speaker {speaker!r} is not in the speaker index ({len(self)} speakers); "
                "the data differs from the data the index was built from"
            ) from None

    def labels(self, utts: Sequence[Utterance]) -> np.ndarray:
        """Class ids of ``utts``, ``(N,)`` int64."""
        unknown = sorted({u.speaker for u in utts if u.speaker not in self._ids})
        if unknown:
            raise ConfigError(
                f"{len(unknown)} speaker(s) not in the speaker index, e.g. {unknown[:_SHOWN]}; "
                "the data differs from the data the index was built from"
            )
        return np.array([self._ids[u.speaker] for u in utts], dtype=np.int64)

    def save(self, path: str | Path) -> None:
        Path(path).write_text("".join(f"{spk}\n" for spk in self.speakers), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> SpeakerIndex:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such speaker index file")
        speakers = path.read_text(encoding="utf-8").splitlines()
        seen: dict[str, int] = {}
        for number, spk in enumerate(speakers, 1):
            if not spk.strip() or spk != spk.strip():
                raise ConfigError(f"{path}:{number}: empty speaker name or surrounding spaces")
            if spk in seen:
                raise ConfigError(f"{path}:{number}: speaker {spk!r} already on line {seen[spk]}")
            seen[spk] = number
        return cls(speakers)

    def __len__(self) -> int:
        return len(self.speakers)

    def __contains__(self, speaker: object) -> bool:
        return speaker in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpeakerIndex) and self.speakers == other.speakers

    def __repr__(self) -> str:
        return f"SpeakerIndex({len(self)} speakers)"


def add_speed_perturbation(
    utts: Sequence[Utterance], factors: Sequence[float] = (0.9, 1.1)
) -> list[Utterance]:
    """``utts`` plus a copy per factor, as new speakers ``sp0.9-<spk>`` (keys ``sp0.9-<key>``).

    The dataset resamples the audio of a copy by its speed (1.1 = faster, shorter,
    higher pitch), so a copy sounds like another voice: the common recipe trick.
    """
    out = list(utts)
    for factor in factors:
        if not factor > 0 or factor == 1.0:
            raise ConfigError(f"speed factors must be positive and not 1, got {factor}")
        tag = f"sp{factor:g}-"
        out.extend(replace(u, key=tag + u.key, speaker=tag + u.speaker, speed=factor) for u in utts)
    return out


def _existing_dir(path: str | Path) -> Path:
    """``path`` made absolute, so utterance paths stay valid from any directory."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such folder")
    return path.absolute()


def _from_relative(root: Path, path: Path) -> Utterance:
    rel = path.relative_to(root)
    return Utterance(rel.as_posix(), rel.parts[0], str(path))


def _speaker_regex(pattern: str) -> re.Pattern:
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise ConfigError(f"speaker pattern {pattern!r} is not a valid regex: {err}") from None
    if "speaker" not in regex.groupindex:
        raise ConfigError(
            f"speaker pattern {pattern!r} needs a named group (?P<speaker>...), "
            r"e.g. '^(?P<speaker>\d+)-' for LibriSpeech file names"
        )
    return regex


def _from_speaker_list(root: Path, list_path: Path) -> list[Utterance]:
    if not list_path.is_file():
        raise ConfigError(f"{list_path}: no such speaker list file")
    utts, seen = [], {}
    for number, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rsplit(maxsplit=1)
        if len(fields) != 2:
            raise ConfigError(f"{list_path}:{number}: expected 'path speaker', got {line!r}")
        rel, speaker = fields
        if rel in seen:
            raise ConfigError(f"{list_path}:{number}: {rel!r} already listed on line {seen[rel]}")
        seen[rel] = number
        audio = Path(rel) if Path(rel).is_absolute() else root / rel
        utts.append(Utterance(rel, speaker, str(audio)))
    if not utts:
        raise ConfigError(f"{list_path}: no 'path speaker' lines")
    return utts


def _read_kaldi_table(path: Path) -> dict[str, tuple[str, int]]:
    if not path.is_file():
        raise ConfigError(f"{path.parent}: a Kaldi data directory needs {path.name}")
    table: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split(maxsplit=1)
        if len(fields) != 2:
            raise ConfigError(f"{path}:{number}: expected '<utterance-id> <value>', got {line!r}")
        if fields[0] in table:
            raise ConfigError(f"{path}:{number}: {fields[0]!r} already on line {table[fields[0]][1]}")
        table[fields[0]] = (fields[1], number)
    return table


def _report_unpaired(directory: Path, wavs: set[str], speakers: set[str]) -> None:
    for missing, has, lacks in ((wavs - speakers, "wav.scp", "utt2spk"),
                                (speakers - wavs, "utt2spk", "wav.scp")):
        if missing:
            logger.warning(
                "%s: %d utterance(s) in %s but not in %s are left out, e.g. %s",
                directory, len(missing), has, lacks, sorted(missing)[:_SHOWN],
            )


def _report_skipped(names: list[str], why: str, root: Path) -> None:
    if names:
        logger.warning("%s: %d %s skipped, e.g. %s", root, len(names), why, names[:_SHOWN])


def _detect_kind(source: Path, pattern: str | None) -> str:
    if source.is_file():
        with open(source, encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        return "list" if first.startswith(LIST_HEADER.split(":")[0]) else "folder"
    if (source / "wav.scp").is_file():
        return "kaldi"
    if pattern is None:
        speakers = [d for d in source.iterdir() if d.is_dir()]
        if speakers and all(_VOXCELEB_SPEAKER.match(d.name) for d in speakers) and any(
            p.suffix.lower() in AUDIO_SUFFIXES for p in source.glob("*/*/*")
        ):
            return "voxceleb"
    return "folder"
