"""The enrollment store's SQLite schema: its tables, its version, and the migrations from older versions.

The version lives in ``PRAGMA user_version`` and in the ``meta`` table. A new
store gets the current schema; a store of an older version is migrated in
place, inside the caller's write transaction (so a crash leaves it as it was);
a newer or unknown one is refused rather than misread.

* v1: speakers and one embedding per enrolled recording.
* v2: each recording also keeps its duration, the seconds of speech its
  embedding used and its ghost mass (NULL for recordings enrolled under v1).
"""
from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from ..errors import StoreError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
APPLICATION = "speakervlad-enrollment-store"

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE speakers (id TEXT PRIMARY KEY, created REAL NOT NULL)",
    """CREATE TABLE embeddings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        speaker_id TEXT NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        dim INTEGER NOT NULL CHECK (dim > 0),
        vector BLOB NOT NULL CHECK (length(vector) = 4 * dim),
        created REAL NOT NULL,
        seconds REAL,
        speech_seconds REAL,
        ghost_mass REAL CHECK (ghost_mass BETWEEN 0 AND 1))""",
    "CREATE INDEX embeddings_by_speaker ON embeddings(speaker_id)",
)
#: version -> the statements that take a store from it to the next version
_MIGRATIONS = {
    1: ("ALTER TABLE embeddings ADD COLUMN seconds REAL",
        "ALTER TABLE embeddings ADD COLUMN speech_seconds REAL",
        "ALTER TABLE embeddings ADD COLUMN ghost_mass REAL CHECK (ghost_mass BETWEEN 0 AND 1)"),
}


def create_or_upgrade(cur: sqlite3.Cursor, path: Path) -> None:
    """Inside a write transaction: create the schema in an empty file, migrate an older one, or check it."""
    version = cur.execute("PRAGMA user_version").fetchone()[0]
    tables = {row[0] for row in cur.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if version == 0 and not tables:
        for statement in _SCHEMA:
            cur.execute(statement)
        cur.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION)),
                         ("created", str(time.time()))])
        cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        logger.info("created enrollment store %s (schema v%d)", path, SCHEMA_VERSION)
        return
    meta = dict(cur.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
    if meta.get("application") != APPLICATION:
        raise StoreError(f"{path} is an SQLite file but not a speakervlad enrollment store; give another --db path")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path} uses enrollment-store schema v{version}, written by a newer speakervlad; "
                         f"this version reads v{SCHEMA_VERSION}: upgrade speakervlad")
    if version in _MIGRATIONS and meta.get("schema_version") == str(version):
        _migrate(cur, version, path)
    elif version != SCHEMA_VERSION or meta.get("schema_version") != str(SCHEMA_VERSION):
        raise StoreError(f"{path} has an unknown enrollment-store schema version (user_version {version}, "
                         f"meta {meta.get('schema_version')!r}); this speakervlad reads v{SCHEMA_VERSION}")


def _migrate(cur: sqlite3.Cursor, version: int, path: Path) -> None:
    start = version
    while version < SCHEMA_VERSION:
        for statement in _MIGRATIONS[version]:
            cur.execute(statement)
        version += 1
    cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    cur.execute(f"PRAGMA user_version = {version:d}")
    logger.info("migrated enrollment store %s from schema v%d to v%d", path, start, version)
