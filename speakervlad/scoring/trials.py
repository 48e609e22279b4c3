"""Trial lists: which utterance pairs to score, and whether each is a target.

The one module that reads and writes them. Two formats are read, detected from
the first non-blank line (:func:`write_trials` writes VoxCeleb's):

* VoxCeleb: ``LABEL ENROLL TEST`` with LABEL ``1`` (same speaker) or ``0``, e.g.
  ``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``
* Kaldi: ``ENROLL TEST target|nontarget``

Keys are stored once (sorted, unique) and trials as integer indices into them,
so a list of 581,480 trials parses in a fraction of a second and scoring can
work on unique utterances.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "trials.txt"
>>> _ = path.write_text("1 a.wav b.wav\\n0 a.wav c.wav\\n")
>>> trials = read_trials(path)
>>> trials.format, len(trials), trials.labels.tolist(), trials.test
('voxceleb', 2, [True, False], ['b.wav', 'c.wav'])
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from ..errors import TrialError

#: one trial as built in Python: (enroll key, test key, is a target)
Trial = tuple[str, str, bool]

VOXCELEB, KALDI = "voxceleb", "kaldi"
_EXPECTED = {
    VOXCELEB: "'LABEL ENROLL TEST' with LABEL 1 (target) or 0 (non-target)",
    KALDI: "'ENROLL TEST target|nontarget'",
}


@dataclass(frozen=True)
class Trials:
    """A trial list: ``keys[enroll_idx[i]]`` vs ``keys[test_idx[i]]``, target iff ``labels[i]``."""

    keys: np.ndarray  # (U,) str, sorted and unique
    enroll_idx: np.ndarray  # (T,) int64 index into keys
    test_idx: np.ndarray  # (T,) int64 index into keys
    labels: np.ndarray  # (T,) bool, True = same speaker
    source: str = "<memory>"
    format: str = VOXCELEB

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def enroll(self) -> list[str]:
        return self.keys[self.enroll_idx].tolist()

    @property
    def test(self) -> list[str]:
        return self.keys[self.test_idx].tolist()

    @property
    def n_target(self) -> int:
        return int(np.count_nonzero(self.labels))

    @property
    def n_nontarget(self) -> int:
        return len(self) - self.n_target

    @property
    def name(self) -> str:
        """A short name for tables: the file stem, or ``trials``."""
        return Path(self.source).stem if self.source != "<memory>" else "trials"

    def subset(self, mask: np.ndarray) -> Trials:
        """The trials where ``mask`` (T,) is True, in the same order (keys unchanged)."""
        return Trials(self.keys, self.enroll_idx[mask], self.test_idx[mask],
                      self.labels[mask], self.source, self.format)

    @classmethod
    def from_pairs(cls, enroll: Sequence[str], test: Sequence[str], labels: Sequence[bool],
                   source: str = "<memory>") -> Trials:
        """Build trials from parallel lists of keys and target flags."""
        if not len(enroll) == len(test) == len(labels):
            raise TrialError(f"{len(enroll)} enroll keys, {len(test)} test keys and "
                             f"{len(labels)} labels: they must have the same length")
        both = np.asarray(list(enroll) + list(test), dtype=str)
        keys, inverse = np.unique(both, return_inverse=True)
        n = len(enroll)
        return cls(keys, inverse[:n].astype(np.int64), inverse[n:].astype(np.int64),
                   np.asarray(labels, dtype=bool).reshape(n), source)


def read_trials(path: str | Path) -> Trials:
    """Read a VoxCeleb or Kaldi trial list (format detected from the first line).

    Raises TrialError naming the file, line number and expected format of the
    first malformed line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TrialError(f"cannot read trial list {path}: {err.strerror or err}") from err
    first = first_line(data)
    if first is None:
        raise TrialError(f"{path}: the trial list is empty; expected lines like {_EXPECTED[VOXCELEB]}"
                         f" or {_EXPECTED[KALDI]}")
    fmt = _detect(path, *first)
    table, bad = three_columns(data)
    if bad is not None:
        lines = data.splitlines()
        _fail(path, lines, bad, fmt, f"has {len(lines[bad].split())} fields")
    if fmt == VOXCELEB:
        label_col, enroll, test = table[:, 0], table[:, 1], table[:, 2]
        labels, valid = label_col == b"1", (label_col == b"1") | (label_col == b"0")
    else:
        enroll, test, label_col = table[:, 0], table[:, 1], table[:, 2]
        labels, valid = label_col == b"target", (label_col == b"target") | (label_col == b"nontarget")
    if not valid.all():
        row, lines = int(np.argmin(valid)), data.splitlines()
        _fail(path, lines, _line_of_row(lines, row), fmt, f"has label {label_col[row].decode(errors='replace')!r}")
    raw_keys, enroll_idx, test_idx = factorize_pairs(enroll, test)
    return Trials(decode_keys(raw_keys, path), enroll_idx, test_idx, labels, str(path), fmt)


def write_trials(path: str | Path, trials: Sequence[Trial]) -> None:
    """Write trials in the VoxCeleb format: ``1 enroll test`` (target) / ``0 enroll test``."""
    lines = []
    for enroll, test, target in trials:
        if any(ch.isspace() for ch in enroll + test):
            raise TrialError(f"trial keys may not contain spaces: {enroll!r} {test!r}")
        lines.append(f"{int(bool(target))} {enroll} {test}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def first_line(data: bytes) -> tuple[int, bytes] | None:
    """(index, text) of the first non-blank line, or None if there is none."""
    start, index = 0, 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if data[start:end].strip():
            return index, data[start:end]
        start, index = end + 1, index + 1
    return None


def three_columns(data: bytes) -> tuple[np.ndarray, int | None]:
    """The fields of a 3-column text as (T, 3) bytes, and the index of the first line
    (blank lines aside) without exactly 3 fields, or None when there is none."""
    tokens = data.split()
    table = np.array(tokens, dtype=bytes).reshape(-1, 3) if len(tokens) % 3 == 0 else None
    if table is not None and _one_row_per_line(data, table):
        return table, None
    lines = data.splitlines()
    bad = next((i for i, line in enumerate(lines) if len(line.split()) not in (0, 3)), None)
    return table, bad


def _one_row_per_line(data: bytes, table: np.ndarray) -> bool:
    """Fast exact check that line i holds exactly row i, for the usual layout.

    With only spaces and newlines as whitespace, every line needs at least one
    whitespace byte per field it holds (separators and its newline), so a count
    of exactly 3 per row means single spaces, no blank lines and no padding;
    then line i holds row i iff it ends where row i's fields would.
    """
    body = data if data.endswith(b"\n") else data + b"\n"
    if any(other in body for other in (b"\t", b"\r", b"\x0b", b"\x0c")):
        return False
    line_ends = np.flatnonzero(np.frombuffer(body, np.uint8) == ord("\n"))  # (L,)
    if body.count(b" ") + line_ends.shape[0] != 3 * table.shape[0]:
        return False
    row_ends = np.cumsum(np.char.str_len(table).sum(axis=1) + 3) - 1  # (T,) 2 spaces + newline
    return bool(np.array_equal(row_ends, line_ends))


def decode_keys(raw: np.ndarray, source: str | Path) -> np.ndarray:
    """UTF-8 bytes keys (N,) as str (N,); ASCII (the usual case) takes a fast cast."""
    try:
        return raw.astype(str)
    except UnicodeDecodeError:
        pass
    try:
        return np.char.decode(raw, "utf-8")
    except UnicodeDecodeError as err:
        raise TrialError(f"{source}: keys must be UTF-8 text ({err})") from None


def factorize_pairs(enroll: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique keys of two bytes columns (T,) and each column's indices into them.

    Trial lists usually repeat one enroll key on consecutive lines, so each
    run of equal enroll keys is looked up once.
    """
    starts = np.ones(enroll.shape[0], bool)  # (T,) first line of each run
    np.not_equal(enroll[1:], enroll[:-1], out=starts[1:])
    heads = enroll[starts]  # (R,)
    keys, inverse = factorize(np.concatenate([heads, test]))
    enroll_idx = inverse[:heads.shape[0]][np.cumsum(starts) - 1]
    return keys, enroll_idx, inverse[heads.shape[0]:]


def factorize(strings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(strings, return_inverse=True)`` for a bytes array, about 3x faster.

    Groups equal strings by a 64-bit hash of their bytes (an integer sort
    instead of a string sort), checks that no two different strings share a
    hash (falling back to ``np.unique`` if they do), then sorts the few unique
    strings.
    """
    n = strings.shape[0]  # strings: (N,) bytes
    width = -(-max(strings.dtype.itemsize, 1) // 8) * 8
    words = np.ascontiguousarray(strings.astype(f"S{width}")).view(np.uint64).reshape(n, -1)
    hashes = np.zeros(n, np.uint64)  # (N,)
    for column in words.T:
        hashes ^= column
        hashes *= np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2**64
    order = np.argsort(hashes)
    sorted_hashes = hashes[order]
    starts = np.ones(n, bool)
    np.not_equal(sorted_hashes[1:], sorted_hashes[:-1], out=starts[1:])
    group = np.empty(n, np.int64)
    group[order] = np.cumsum(starts) - 1
    firsts = strings[order[starts]]  # (G,) one string per hash
    if not np.array_equal(firsts[group], strings):  # a hash collision
        unique, inverse = np.unique(strings, return_inverse=True)
        return unique, inverse.astype(np.int64)
    rank_order = np.argsort(firsts)
    rank = np.empty_like(rank_order)
    rank[rank_order] = np.arange(rank_order.shape[0])
    return firsts[rank_order], rank[group]


def _detect(path: Path, index: int, line: bytes) -> str:
    fields = line.split()
    if len(fields) == 3 and fields[0] in (b"0", b"1"):
        return VOXCELEB
    if len(fields) == 3 and fields[2] in (b"target", b"nontarget"):
        return KALDI
    shown = line.decode(errors="replace").strip()
    raise TrialError(f"{path}, line {index + 1}: cannot tell the trial format from {shown!r}; "
                     f"expected VoxCeleb {_EXPECTED[VOXCELEB]} or Kaldi {_EXPECTED[KALDI]}")


def _line_of_row(lines: list[bytes], row: int) -> int:
    """Index of the line holding trial ``row`` (blank lines hold none)."""
    seen = -1
    for i, line in enumerate(lines):
        seen += bool(line.split())
        if seen == row:
            return i
    raise IndexError(row)


def _fail(path: Path, lines: list[bytes], index: int, fmt: str, problem: str) -> NoReturn:
    shown = lines[index].decode(errors="replace").strip()
    raise TrialError(f"{path}, line {index + 1}: {shown!r} {problem}; expected {_EXPECTED[fmt]} "
                     f"({fmt} format, detected from the first line)")
