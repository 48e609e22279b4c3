"""EnrollmentStore: round trips, schema versions, ids, models, concurrency, crashes."""
from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest

from speakervlad.errors import StoreError, StoreUnavailableError, UnknownSpeakerError
from speakervlad.verification.identifiers import validate_speaker_id
from speakervlad.verification.quality import RecordingQuality
from speakervlad.verification.store import EnrollmentStore
from speakervlad.verification.store_schema import SCHEMA_VERSION

FP = "a" * 64
OTHER_FP = "b" * 64


@pytest.fixture()
def store(tmp_path: Path) -> EnrollmentStore:
    with EnrollmentStore(tmp_path / "voices.db") as opened:
        yield opened


def test_round_trip_keeps_values_order_and_labels(store: EnrollmentStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    first, second = rng.standard_normal((2, 8)).astype(np.float32), rng.standard_normal((1, 8))
    assert store.add("alice", first, ["a.wav", "b.wav"], FP) == 2
    assert store.add("alice", second, ["c.wav"], FP) == 3
    np.testing.assert_array_equal(store.profile("alice", FP), np.vstack([first, second]).astype(np.float32))
    store.close()
    reopened = EnrollmentStore(tmp_path / "voices.db")
    info = reopened.speakers()
    assert [(i.speaker_id, i.recordings, i.fingerprints) for i in info] == [("alice", 3, (FP,))]
    labels = sqlite3.connect(tmp_path / "voices.db").execute(
        "SELECT label FROM embeddings ORDER BY id").fetchall()
    assert [row[0] for row in labels] == ["a.wav", "b.wav", "c.wav"]
    assert sqlite3.connect(tmp_path / "voices.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_remove_and_unknown_speaker(store: EnrollmentStore) -> None:
    store.add("bob", np.ones((3, 4)), ["1", "2", "3"], FP)
    store.add("carol", np.ones((1, 4)), ["1"], FP)
    assert "bob" in store and len(store) == 2
    assert store.remove("bob") == 3
    assert "bob" not in store and [i.speaker_id for i in store.speakers()] == ["carol"]
    with pytest.raises(UnknownSpeakerError, match="'bob' is not enrolled"):
        store.profile("bob", FP)
    with pytest.raises(UnknownSpeakerError):
        store.remove("bob")


def test_all_profiles_skips_other_models(store: EnrollmentStore) -> None:
    store.add("x", np.full((2, 4), 1.0), ["1", "2"], FP)
    store.add("y", np.full((1, 4), 2.0), ["1"], FP)
    store.add("z", np.full((1, 4), 3.0), ["1"], OTHER_FP)
    profiles = store.all_profiles(FP)
    assert sorted(profiles) == ["x", "y"]
    np.testing.assert_array_equal(profiles["y"], np.full((1, 4), 2.0, np.float32))


def test_other_model_is_refused_with_reenroll_advice(store: EnrollmentStore) -> None:
    store.add("dave", np.ones((1, 4)), ["1"], FP)
    with pytest.raises(StoreError, match="re-enroll"):
        store.profile("dave", OTHER_FP)
    with pytest.raises(StoreError, match="another model"):
        store.add("dave", np.ones((1, 4)), ["2"], OTHER_FP)
    assert store.add("dave", np.zeros((2, 4)) + 5, ["3", "4"], OTHER_FP, replace=True) == 2
    np.testing.assert_array_equal(store.profile("dave", OTHER_FP), np.full((2, 4), 5.0, np.float32))


@pytest.mark.parametrize("good", ["alice", "id10270", "a.b-c_d@example.org", "x" * 64, "a--b", "0"])
def test_valid_ids(good: str) -> None:
    assert validate_speaker_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "x" * 65, ".hidden", "..", "a b", "a/b", "é", "alice'; DROP TABLE speakers;--",
            "a\x00b", 'x" OR 1=1', None, 42],
)
def test_invalid_ids_are_refused(store: EnrollmentStore, bad: object) -> None:
    with pytest.raises(StoreError, match="invalid speaker id"):
        store.add(bad, np.ones((1, 4)), ["1"], FP)  # type: ignore[arg-type]


def test_sql_looking_ids_and_labels_stored_verbatim(store: EnrollmentStore) -> None:
    sneaky = "x--1@OR-1"
    label = "'); DROP TABLE speakers; --"
    store.add(sneaky, np.ones((1, 4)), [label], FP)
    store.add("other", np.ones((1, 4)), ["ok"], FP)
    assert [i.speaker_id for i in store.speakers()] == ["other", sneaky]
    row = sqlite3.connect(store.path).execute("SELECT label FROM embeddings WHERE speaker_id = ?", (sneaky,))
    assert row.fetchone()[0] == label


def test_bad_embeddings_are_refused(store: EnrollmentStore) -> None:
    with pytest.raises(StoreError, match="NaN"):
        store.add("e", np.array([[1.0, np.nan]]), ["1"], FP)
    with pytest.raises(StoreError, match="labels"):
        store.add("e", np.ones((2, 4)), ["1"], FP)
    with pytest.raises(StoreError, match="shape"):
        store.add("e", np.ones((0, 4)), [], FP)
    assert "e" not in store


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "voices.db"
    with EnrollmentStore(path) as created:
        assert created.speakers() == []
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer speakervlad"):
        EnrollmentStore(path)


#: the v1 schema as speakervlad 0.1 wrote it (before recordings kept their duration, speech and ghost mass)
V1_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE speakers (id TEXT PRIMARY KEY, created REAL NOT NULL)",
    "CREATE TABLE embeddings (id INTEGER PRIMARY KEY AUTOINCREMENT, speaker_id TEXT NOT NULL REFERENCES "
    "speakers(id) ON DELETE CASCADE, label TEXT NOT NULL, fingerprint TEXT NOT NULL, dim INTEGER NOT NULL "
    "CHECK (dim > 0), vector BLOB NOT NULL CHECK (length(vector) = 4 * dim), created REAL NOT NULL)",
    "CREATE INDEX embeddings_by_speaker ON embeddings(speaker_id)",
    "INSERT INTO meta VALUES ('application', 'speakervlad-enrollment-store'), ('schema_version', '1')",
    "PRAGMA user_version = 1",
]


def test_a_v1_store_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    vectors = np.arange(8, dtype="<f4").reshape(2, 4)
    with sqlite3.connect(path) as conn:
        for statement in V1_SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO speakers VALUES ('alice', 1.0)")
        conn.executemany("INSERT INTO embeddings (speaker_id, label, fingerprint, dim, vector, created) "
                         "VALUES ('alice', ?, ?, 4, ?, 2.0)", [("a.wav", FP, vectors[0].tobytes()),
                                                               ("b.wav", FP, vectors[1].tobytes())])
    with EnrollmentStore(path) as store:
        np.testing.assert_array_equal(store.profile("alice", FP), vectors)  # what was enrolled is intact
        old = store.recordings("alice")
        assert [(r.label, r.quality) for r in old] == [("a.wav", RecordingQuality(None, None, None)),
                                                      ("b.wav", RecordingQuality(None, None, None))]
        assert store.add("alice", vectors[:1], ["c.wav"], FP, quality=[RecordingQuality(3.0, 2.5, 0.25)]) == 3
        assert store.recordings("alice")[-1].quality == RecordingQuality(3.0, 2.5, 0.25)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
    EnrollmentStore(path).close()  # opening (and so checking) a migrated store again changes nothing
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 3


def test_recording_quality_round_trip_and_checks(store: EnrollmentStore) -> None:
    quality = [RecordingQuality(4.0, 3.2, 0.4), RecordingQuality(2.5, 2.5, None)]
    store.add("bob", np.ones((2, 4)), ["x.wav", "y.wav"], FP, quality=quality)
    got = store.recordings("bob")
    assert [r.quality for r in got] == quality and [r.label for r in got] == ["x.wav", "y.wav"]
    assert all(r.fingerprint == FP for r in got)
    for bad in (RecordingQuality(1.0, 1.0, 1.5), RecordingQuality(-1.0, 1.0, 0.1),
                RecordingQuality(1.0, float("nan"), 0.1)):
        with pytest.raises(StoreError, match="ghost mass in \\[0, 1\\]"):
            store.add("carl", np.ones((1, 4)), ["z.wav"], FP, quality=[bad])
    with pytest.raises(StoreError, match="1 embeddings but 2 quality records"):
        store.add("carl", np.ones((1, 4)), ["z.wav"], FP, quality=quality)
    assert "carl" not in store
    with pytest.raises(UnknownSpeakerError):
        store.recordings("carl")


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(StoreError, match="not a speakervlad enrollment store"):
        EnrollmentStore(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a speakervlad enrollment store"):
        EnrollmentStore(junk)
    with pytest.raises(StoreError, match="does not exist"):
        EnrollmentStore(tmp_path / "missing" / "voices.db")


def test_a_new_store_is_created_at_its_first_use(tmp_path: Path) -> None:
    path = tmp_path / "voices.db"
    store = EnrollmentStore(path)
    assert not path.exists()  # an enrollment that fails before storing leaves no file
    with pytest.raises(StoreError, match="invalid speaker id"):
        store.add("a b", np.ones((1, 4)), ["1"], FP)
    assert not path.exists()
    assert store.add("alice", np.ones((1, 4)), ["1"], FP) == 1
    assert path.exists() and EnrollmentStore(path).speakers()[0].speaker_id == "alice"
    reader = EnrollmentStore(tmp_path / "other.db")
    assert reader.speakers() == [] and (tmp_path / "other.db").exists()  # a read creates it, as before
    EnrollmentStore(tmp_path / "served.db").create_now()  # what `speakervlad serve` does at startup
    assert EnrollmentStore(tmp_path / "served.db").speakers() == []


def test_creation_blocked_too_long_says_retry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("speakervlad.verification.store.BUSY_TIMEOUT_MS", 300)
    path = tmp_path / "voices.db"
    store = EnrollmentStore(path)  # no file yet: made at the first write
    blocker = sqlite3.connect(path, isolation_level=None)  # another process creates it and holds it
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreUnavailableError, match="another process held the store for 0.3 s"):
        store.add("alice", np.ones((1, 4)), ["1"], FP)
    blocker.execute("ROLLBACK")
    assert store.add("alice", np.ones((1, 4)), ["1"], FP) == 1  # nothing half-made in the way


@pytest.mark.parametrize("created", [True, False], ids=["existing-store", "new-file"])
def test_writer_waits_for_a_held_lock(store: EnrollmentStore, created: bool) -> None:
    if created:
        store.create_now()
    # on a new file the blocker creates it in rollback mode: the switch to WAL must wait too
    blocker = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, lambda: blocker.execute("COMMIT")).start()
    started = time.monotonic()
    store.add("waiter", np.ones((1, 4)), ["1"], FP)
    assert time.monotonic() - started >= 0.4
    assert "waiter" in store


def test_threads_share_one_store(store: EnrollmentStore) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(10):
                store.add(f"t{k}-{i}", np.full((2, 4), k), ["1", "2"], FP)
                store.all_profiles(FP)
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(store) == 40


FORK = multiprocessing.get_context("fork")  # cheap children: the parent has imported everything


def _worker(db: Path, role: str, k: int, go: Path) -> None:
    """Child process body; a failure is written to ``error-<role>-<k>.txt`` beside ``go``."""
    try:
        store = EnrollmentStore(db)
        while not go.exists():
            time.sleep(0.01)
        if role == "writer":
            for i in range(10):
                store.add(f"w{k}-s{i}", np.full((3, 16), k * 100 + i, np.float32), ["a", "b", "c"], "fp")
        elif role == "reader":
            stop = time.monotonic() + 10
            while time.monotonic() < stop and len(store) < 40:
                for info in store.speakers():
                    assert store.profile(info.speaker_id, "fp").shape == (3, 16)
                store.all_profiles("fp")
        else:
            _enroll_until_killed(store, go.parent)
    except BaseException:  # noqa: BLE001 - reported to the parent through the file
        (go.parent / f"error-{role}-{k}.txt").write_text(traceback.format_exc())
        os._exit(1)


def _enroll_until_killed(store: EnrollmentStore, folder: Path) -> None:
    """Three speakers commit; the fourth stops (for the kill) half-way through its inserts."""
    for i in range(3):
        store.add(f"k-{i}", np.full((400, 256), i, np.float32), [str(j) for j in range(400)], "fp")
    conn = store._connect()
    conn.execute("PRAGMA cache_size = 4")  # spill uncommitted pages into the WAL file
    committed_wal = _wal_bytes(store.path)
    inserts = []

    def trace(sql: str) -> None:
        if sql.startswith("INSERT INTO embeddings"):
            inserts.append(sql)
            if len(inserts) == 300:
                (folder / "inside.tmp").write_text(str(committed_wal))
                (folder / "inside.tmp").rename(folder / "inside")
                time.sleep(60)

    conn.set_trace_callback(trace)
    store.add("k-3", np.full((400, 256), 3, np.float32), [str(j) for j in range(400)], "fp")


def _spawn(db: Path, role: str, k: int, go: Path) -> multiprocessing.Process:
    proc = FORK.Process(target=_worker, args=(db, role, k, go))
    proc.start()
    return proc


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    db, go = tmp_path / "voices.db", tmp_path / "go"  # no file yet: the first writers create it together
    procs = [_spawn(db, "writer", k, go) for k in range(4)] + [_spawn(db, "reader", k, go) for k in range(2)]
    time.sleep(0.2)
    go.touch()
    for proc in procs:
        proc.join(timeout=60)
    errors = "".join(f.read_text() for f in tmp_path.glob("error-*.txt"))
    assert errors == "" and [p.exitcode for p in procs] == [0] * 6
    store = EnrollmentStore(db)
    assert len(store) == 40
    for k in range(4):
        for i in range(10):
            np.testing.assert_array_equal(store.profile(f"w{k}-s{i}", "fp"), np.full((3, 16), k * 100 + i))


def test_killed_writer_leaves_store_consistent(tmp_path: Path) -> None:
    db, go = tmp_path / "voices.db", tmp_path / "go"
    go.touch()
    proc = _spawn(db, "killed", 0, go)
    deadline = time.monotonic() + 30
    while not (tmp_path / "inside").exists() and proc.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (tmp_path / "inside").exists(), "".join(f.read_text() for f in tmp_path.glob("error-*"))
    committed_wal = int((tmp_path / "inside").read_text())
    assert _wal_bytes(db) > committed_wal + 100 * 1024  # the half-done transaction reached the disk
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    with sqlite3.connect(db) as check:  # SQLite's own verdict, independent of the store
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = EnrollmentStore(db)
    assert [(i.speaker_id, i.recordings) for i in store.speakers()] == [(f"k-{i}", 400) for i in range(3)]
    np.testing.assert_array_equal(store.profile("k-2", "fp"), np.full((400, 256), 2, np.float32))
    store.add("k-3", np.ones((1, 256)), ["again"], "fp")  # the lock died with the process
    assert store.profile("k-3", "fp").shape == (1, 256)


def _wal_bytes(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0
