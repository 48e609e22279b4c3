"""Persistent enrollment store: speakers and their per-recording embeddings in SQLite.

One file, WAL mode (readers never block the writer), a busy timeout so that
concurrent processes wait for each other instead of failing, every write in one
``BEGIN IMMEDIATE ... COMMIT`` transaction (a crash leaves a speaker either
fully enrolled or absent), and only parameterised SQL. The schema is versioned
(``PRAGMA user_version`` and a ``meta`` table); a store written by a newer
version is refused rather than misread, and one written by an older version is
migrated in place when it is opened (:mod:`speakervlad.verification.store_schema`).
A missing file is created at the store's first read or write, not when the
object is made, so an enrollment refused before anything is stored (an
unreadable file, too little speech) leaves no empty store behind.

Each embedding records the fingerprint of the model that produced it; reading a
profile for another model is refused, because scores across models mean nothing.

>>> import tempfile, numpy as np
>>> store = EnrollmentStore(tempfile.mkdtemp() + "/voices.db")
>>> store.add("alice", np.ones((2, 4), np.float32), ["a.wav", "b.wav"], "model-1")
2
>>> store.profile("alice", "model-1").shape
(2, 4)
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StoreError, StoreUnavailableError, UnknownSpeakerError
from .identifiers import validate_label, validate_speaker_id
from .quality import RecordingQuality
from .store_schema import create_or_upgrade

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000

@dataclass(frozen=True)
class SpeakerInfo:
    """One enrolled speaker: how many recordings, from which model(s)."""

    speaker_id: str
    recordings: int
    fingerprints: tuple[str, ...]
    created: float


@dataclass(frozen=True)
class EnrolledRecording:
    """One enrolled recording: its label, the model that embedded it, and what it gave the embedding."""

    label: str
    fingerprint: str
    created: float
    quality: RecordingQuality


class EnrollmentStore:
    """Enrolled speakers in one SQLite file; safe across threads and processes.

    Each thread (and each process, after a fork) gets its own connection.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory; give the path of a .db file")
        if not self.path.parent.exists():
            raise StoreError(f"{self.path}: the folder {self.path.parent} does not exist")
        self._local = threading.local()
        self._lock = threading.Lock()  # guards _connections
        self._schema_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._initialised = False
        if self.path.exists():
            self._initialise()  # a file that is not a store, or a newer one, fails here

    # -- connections -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints in WAL mode
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"{self.path} is not a speakervlad enrollment store or cannot be opened "
                f"(SQLite says: {err})"
            ) from None
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._lock:
            self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this store opened (in this process)."""
        with self._lock:
            conns, self._connections = self._connections, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> EnrollmentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> _Transaction:
        self._initialise()
        return _Transaction(self._connect(), "BEGIN IMMEDIATE", self.path)

    def _read(self) -> _Transaction:
        self._initialise()
        return _Transaction(self._connect(), "BEGIN", self.path)

    # -- schema ------------------------------------------------------------

    def create_now(self) -> None:
        """Create (or check) the file now: a server should fail at startup, not at its first request."""
        self._initialise()

    def _initialise(self) -> None:
        """Create the file or check and upgrade its schema, once per store object."""
        if self._initialised:
            return
        with self._schema_lock:
            if self._initialised:
                return
            self._create_or_upgrade()
            self._initialised = True

    def _create_or_upgrade(self) -> None:
        conn = self._connect()
        try:
            mode = _switch_to_wal(conn)
        except sqlite3.DatabaseError as err:
            if "locked" in str(err):  # _switch_to_wal waited the whole busy timeout
                raise StoreUnavailableError(
                    f"{self.path}: another process held the store for {BUSY_TIMEOUT_MS / 1000:g} s while it "
                    f"was being created; nothing was changed, try again") from None
            raise StoreError(
                f"{self.path} is not a speakervlad enrollment store (SQLite says: {err})"
            ) from None
        if mode.lower() != "wal":
            logger.warning("%s: journal mode is %s, not WAL", self.path, mode)
        with _Transaction(conn, "BEGIN IMMEDIATE", self.path) as cur:
            create_or_upgrade(cur, self.path)

    # -- writes ------------------------------------------------------------

    def add(
        self,
        speaker_id: str,
        embeddings: np.ndarray,
        labels: Sequence[str],
        fingerprint: str,
        replace: bool = False,
        quality: Sequence[RecordingQuality] | None = None,
    ) -> int:
        """Add one embedding per recording (``embeddings`` (n, E)), with what each gave it
        (``quality``, optional); return the speaker's total.

        Adding to a speaker enrolled with another model is refused unless
        ``replace`` (then the old embeddings are dropped in the same transaction).
        """
        validate_speaker_id(speaker_id)
        matrix = _check_matrix(embeddings)  # (n, E)
        labels = [validate_label(str(label)) for label in labels]
        if len(labels) != len(matrix):
            raise StoreError(f"{len(matrix)} embeddings but {len(labels)} labels")
        quality = list(quality) if quality is not None else [RecordingQuality(None, None, None)] * len(matrix)
        if len(quality) != len(matrix):
            raise StoreError(f"{len(matrix)} embeddings but {len(quality)} quality records")
        if not fingerprint:
            raise StoreError("a model fingerprint is required to store embeddings")
        now = time.time()
        rows = [(speaker_id, label, fingerprint, matrix.shape[1], vec.tobytes(), now, *_quality_row(q))
                for label, vec, q in zip(labels, matrix, quality)]
        with self._write() as cur:
            cur.execute("INSERT OR IGNORE INTO speakers (id, created) VALUES (?, ?)", (speaker_id, now))
            if replace:
                cur.execute("DELETE FROM embeddings WHERE speaker_id = ?", (speaker_id,))
            else:
                _refuse_other_model(cur, speaker_id, fingerprint, matrix.shape[1])
            cur.executemany(
                "INSERT INTO embeddings (speaker_id, label, fingerprint, dim, vector, created, seconds, "
                "speech_seconds, ghost_mass) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows,
            )
            total = cur.execute(
                "SELECT COUNT(*) FROM embeddings WHERE speaker_id = ?", (speaker_id,)
            ).fetchone()[0]
        logger.debug("enrolled %d recording(s) for %s", len(rows), speaker_id)
        return int(total)

    def remove(self, speaker_id: str) -> int:
        """Delete a speaker and all their embeddings; return how many embeddings went."""
        validate_speaker_id(speaker_id)
        with self._write() as cur:
            gone = cur.execute("DELETE FROM embeddings WHERE speaker_id = ?", (speaker_id,)).rowcount
            if cur.execute("DELETE FROM speakers WHERE id = ?", (speaker_id,)).rowcount == 0:
                raise UnknownSpeakerError(f"speaker {speaker_id!r} is not enrolled")
        return int(gone)

    # -- reads -------------------------------------------------------------

    def profile(self, speaker_id: str, fingerprint: str) -> np.ndarray:
        """The speaker's embeddings (n, E) from the model ``fingerprint``.

        Raises UnknownSpeakerError if absent, StoreError if enrolled with another model.
        """
        validate_speaker_id(speaker_id)
        with self._read() as cur:
            if cur.execute("SELECT 1 FROM speakers WHERE id = ?", (speaker_id,)).fetchone() is None:
                raise UnknownSpeakerError(f"speaker {speaker_id!r} is not enrolled; enroll them first")
            rows = cur.execute(
                "SELECT fingerprint, dim, vector FROM embeddings WHERE speaker_id = ? ORDER BY id",
                (speaker_id,),
            ).fetchall()
        return _matrix_for(speaker_id, rows, fingerprint)

    def all_profiles(self, fingerprint: str) -> dict[str, np.ndarray]:
        """Every speaker enrolled with model ``fingerprint``: id -> (n, E).

        Speakers enrolled with another model are skipped (and logged).
        """
        with self._read() as cur:
            rows = cur.execute(
                "SELECT speaker_id, fingerprint, dim, vector FROM embeddings ORDER BY speaker_id, id"
            ).fetchall()
        grouped: dict[str, list[tuple[str, int, bytes]]] = {}
        for speaker_id, *rest in rows:
            grouped.setdefault(speaker_id, []).append(tuple(rest))
        profiles, skipped = {}, []
        for speaker_id, group in grouped.items():
            if any(fp != fingerprint for fp, _, _ in group):
                skipped.append(speaker_id)
                continue
            profiles[speaker_id] = _matrix_for(speaker_id, group, fingerprint)
        if skipped:
            logger.warning(
                "%d speaker(s) enrolled with another model are skipped (re-enroll them): %s",
                len(skipped), ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else ""),
            )
        return profiles

    def recordings(self, speaker_id: str) -> list[EnrolledRecording]:
        """The speaker's enrolled recordings, in the order they were added."""
        validate_speaker_id(speaker_id)
        with self._read() as cur:
            if cur.execute("SELECT 1 FROM speakers WHERE id = ?", (speaker_id,)).fetchone() is None:
                raise UnknownSpeakerError(f"speaker {speaker_id!r} is not enrolled")
            rows = cur.execute(
                "SELECT label, fingerprint, created, seconds, speech_seconds, ghost_mass FROM embeddings "
                "WHERE speaker_id = ? ORDER BY id", (speaker_id,),
            ).fetchall()
        return [EnrolledRecording(label, fp, float(created), RecordingQuality(*numbers))
                for label, fp, created, *numbers in rows]

    def speakers(self) -> list[SpeakerInfo]:
        """Every enrolled speaker, sorted by id, with their recording counts."""
        with self._read() as cur:
            rows = cur.execute(
                "SELECT s.id, s.created, COUNT(e.id), group_concat(DISTINCT e.fingerprint) "
                "FROM speakers s LEFT JOIN embeddings e ON e.speaker_id = s.id "
                "GROUP BY s.id ORDER BY s.id"
            ).fetchall()
        return [
            SpeakerInfo(sid, int(count), tuple(sorted(fps.split(","))) if fps else (), float(created))
            for sid, created, count, fps in rows
        ]

    def __contains__(self, speaker_id: str) -> bool:
        with self._read() as cur:
            return cur.execute("SELECT 1 FROM speakers WHERE id = ?", (speaker_id,)).fetchone() is not None

    def __len__(self) -> int:
        with self._read() as cur:
            return int(cur.execute("SELECT COUNT(*) FROM speakers").fetchone()[0])


class _Transaction:
    """``with`` block running one transaction; SQLite errors become StoreError."""

    def __init__(self, conn: sqlite3.Connection, begin: str, path: Path):
        self.conn, self.begin, self.path = conn, begin, path

    def __enter__(self) -> sqlite3.Cursor:
        try:
            self.conn.execute(self.begin)
        except sqlite3.OperationalError as err:
            raise StoreUnavailableError(
                f"{self.path}: cannot start a transaction ({err}); nothing was changed") from None
        return self.conn.cursor()

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.DatabaseError as err:
                self.conn.execute("ROLLBACK")
                raise StoreUnavailableError(f"{self.path}: commit failed ({err}); nothing was changed") from None
        self.conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.DatabaseError):
            raise StoreUnavailableError(f"{self.path}: {exc}; nothing was changed") from exc


def _switch_to_wal(conn: sqlite3.Connection) -> str:
    """``PRAGMA journal_mode = WAL``, waiting up to the busy timeout for other connections.

    Leaving rollback mode needs the file to itself, and SQLite answers "database is
    locked" at once instead of calling the busy handler: two processes creating one
    store together would otherwise see a spurious error. Return the mode in force.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _check_matrix(embeddings: np.ndarray) -> np.ndarray:
    matrix = np.asarray(embeddings, dtype="<f4")
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise StoreError(f"expected an (n, E) embedding matrix with n, E > 0, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise StoreError("embeddings contain NaN or infinite values; they were not stored")
    return np.ascontiguousarray(matrix)


def _quality_row(quality: RecordingQuality) -> tuple[float | None, float | None, float | None]:
    values = (quality.seconds, quality.speech_seconds, quality.ghost_mass)
    if any(v is not None and not (np.isfinite(v) and v >= 0) for v in values) or (quality.ghost_mass or 0) > 1:
        raise StoreError(f"recording quality must be seconds >= 0 and a ghost mass in [0, 1] (or None), "
                         f"got {quality}; nothing was stored")
    return tuple(None if v is None else float(v) for v in values)  # type: ignore[return-value]


def _refuse_other_model(cur: sqlite3.Cursor, speaker_id: str, fingerprint: str, dim: int) -> None:
    other = cur.execute(
        "SELECT fingerprint, dim FROM embeddings WHERE speaker_id = ? AND (fingerprint != ? OR dim != ?) "
        "LIMIT 1", (speaker_id, fingerprint, dim),
    ).fetchone()
    if other is not None:
        raise StoreError(
            f"speaker {speaker_id!r} is enrolled with another model (fingerprint {other[0][:12]}, "
            f"dim {other[1]}), this one is {fingerprint[:12]} (dim {dim}); re-enroll them "
            "from scratch (remove the speaker first, or replace=True)"
        )


def _matrix_for(speaker_id: str, rows: Sequence[tuple[str, int, bytes]], fingerprint: str) -> np.ndarray:
    others = sorted({fp for fp, _, _ in rows if fp != fingerprint})
    if others:
        raise StoreError(
            f"speaker {speaker_id!r} was enrolled with another model (fingerprint "
            f"{', '.join(fp[:12] for fp in others)}), not the loaded one ({fingerprint[:12]}); "
            "scores across models are meaningless: re-enroll the speaker with this model"
        )
    if not rows:
        raise StoreError(f"speaker {speaker_id!r} has no enrolled recordings; enroll them again")
    dim = rows[0][1]
    return np.stack([np.frombuffer(blob, dtype="<f4", count=dim) for _, _, blob in rows])  # (n, E)

