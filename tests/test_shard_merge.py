"""Shards that finish together: exactly one merge, every shard's rows and unusable report in it."""
import fcntl
import threading

import numpy as np
import pytest

from speakervlad.embedding.directory import load_embeddings, save_embeddings
from speakervlad.embedding.shards import (
    UNUSABLE_FILE,
    merge_lock_path,
    merge_shards,
    read_unusable,
    shard_dir,
    try_merge,
    unusable_report,
)

COUNT = 3


def finished_shards(out):
    """Three complete shard directories, each with one row and one unusable file."""
    for i in range(COUNT):
        save_embeddings(shard_dir(out, i, COUNT), [f"k{i}"], np.full((1, 4), i, np.float32),
                        {"model": "m", "shard": [i, COUNT]}, unusable_report([(f"bad{i}", f"/a/bad{i}", "empty")]))


def assert_merged(out):
    merged = load_embeddings(out)
    assert merged.keys == ["k0", "k1", "k2"]
    np.testing.assert_array_equal(np.asarray(merged.matrix)[:, 0], [0, 1, 2])
    assert sorted(key for key, _, _ in read_unusable(out)) == ["bad0", "bad1", "bad2"]
    assert not any(shard_dir(out, i, COUNT).exists() for i in range(COUNT))  # replaced by the merge
    assert not merge_lock_path(out).exists()


def test_the_report_is_written_with_the_rows(tmp_path):
    save_embeddings(tmp_path / "emb", ["a"], np.ones((1, 2), np.float32), files=unusable_report([]))
    assert (tmp_path / "emb" / UNUSABLE_FILE).read_text().startswith("# unusable audio")


@pytest.mark.parametrize("attempt", range(5))
def test_shards_finishing_together_all_see_one_merge(tmp_path, attempt):
    out = tmp_path / "emb"
    finished_shards(out)
    start, results, errors = threading.Barrier(COUNT), [], []

    def finish():
        start.wait()
        try:
            results.append(try_merge(out, COUNT))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=finish) for _ in range(COUNT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == [True] * COUNT
    assert_merged(out)


def test_a_shard_arriving_during_the_merge_waits_and_finds_it_done(tmp_path):
    out = tmp_path / "emb"
    finished_shards(out)
    lock_path = merge_lock_path(out)
    result = []
    with open(lock_path, "a") as held:  # another process is merging
        fcntl.flock(held, fcntl.LOCK_EX)
        late = threading.Thread(target=lambda: result.append(try_merge(out, COUNT)))
        late.start()
        late.join(0.5)
        assert late.is_alive() and result == []  # it waits for the lock
        merge_shards([shard_dir(out, i, COUNT) for i in range(COUNT)], out)
    late.join(10)
    assert result == [True]  # and does not merge again: the shard directories are gone
    assert load_embeddings(out).keys == ["k0", "k1", "k2"]


def test_a_lock_left_by_a_killed_merge_does_not_block(tmp_path):
    out = tmp_path / "emb"
    finished_shards(out)
    merge_lock_path(out).write_text("")  # its holder died: the kernel dropped its lock
    assert try_merge(out, COUNT)
    assert_merged(out)


def test_no_merge_while_a_shard_is_missing(tmp_path):
    out = tmp_path / "emb"
    finished_shards(out)
    (shard_dir(out, 1, COUNT) / "keys.txt").unlink()  # shard 1 is still running
    assert not try_merge(out, COUNT)
    assert not (out / "keys.txt").exists()
