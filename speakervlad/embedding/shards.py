"""Shards of a batch extraction and its report of unusable audio.

``--shard i/n`` (or torchrun's RANK/WORLD_SIZE) takes every n-th key of the
sorted list; each shard writes ``OUT/shard-i-of-n`` with an ``unusable.tsv``
(in the same atomic write as its rows); the last shard to finish merges them into
``OUT`` (rows in key order, equal to an unsharded run), which replaces the shard
directories. Shards that finish together take turns on a lock file beside ``OUT``.
Used by :mod:`speakervlad.embedding.extraction`.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from ..errors import ConfigError, EmbeddingError
from .directory import KEYS_FILE, Embeddings, load_embeddings, save_embeddings

logger = logging.getLogger(__name__)

UNUSABLE_FILE = "unusable.tsv"
UNUSABLE_HEADER = "# unusable audio: key<TAB>path<TAB>reason"
SHARD_DIR = re.compile(r"^shard-(\d+)-of-(\d+)$")
Unusable = tuple[str, str, str]  # key, path, reason


class _HasKey(Protocol):
    key: str


Keyed = TypeVar("Keyed", bound=_HasKey)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not found or not 0 <= int(found.group(1)) < int(found.group(2)):
        raise ConfigError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return int(found.group(1)), int(found.group(2))


def shard_from_env() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) as set by torchrun; (0, 1) outside it."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def shard_items(items: Sequence[Keyed], index: int, count: int) -> list[Keyed]:
    """Shard ``index`` of ``count``: every ``count``-th item of the key-sorted list."""
    return sorted(items, key=lambda item: item.key)[index::count]


def shard_dir(out: str | Path, index: int, count: int) -> Path:
    return Path(out) / f"shard-{index}-of-{count}"


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished embedding directory (its keys file is written last)."""
    return (folder / KEYS_FILE).is_file()


def unusable_report(rows: Sequence[Unusable]) -> dict[str, str]:
    """The unusable-audio report as ``{"unusable.tsv": text}`` (the header alone when none),
    to be written with the rows: ``save_embeddings(..., files=unusable_report(rows))``."""
    clean = [(k, p, " ".join(r.split())) for k, p, r in rows]
    return {UNUSABLE_FILE: "\n".join([UNUSABLE_HEADER] + ["\t".join(row) for row in sorted(clean)]) + "\n"}


def read_unusable(folder: Path) -> list[Unusable]:
    path = folder / UNUSABLE_FILE
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t", 2)) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


# ---- merging shards ---------------------------------------------------------
def merge_shards(shards: Sequence[str | Path], out: str | Path) -> Embeddings:
    """Merge shard directories into ``out``: rows in key order, as an unsharded run writes them.

    Every shard of the same ``n`` must be present (``shard`` in each meta.json).
    """
    if not shards:
        raise EmbeddingError("no shard directories to merge")
    loaded = [load_embeddings(path, mmap=False) for path in shards]
    models = {emb.meta.get("model") for emb in loaded}
    if len(models) != 1:
        raise EmbeddingError(f"cannot merge shards made by different models ({', '.join(map(str, models))})")
    positions = [tuple(emb.meta.get("shard", ())) for emb in loaded]
    counts = {pos[1] for pos in positions if len(pos) == 2}
    complete = {p[0] for p in positions} == set(range(len(positions)))
    if len(counts) != 1 or len(positions) != next(iter(counts)) or not complete:
        raise EmbeddingError(
            f"expected every shard i-of-n exactly once, got {sorted(positions)}; "
            "pass all shard directories of one extraction (shard-*-of-N)"
        )
    keys = [key for emb in loaded for key in emb.keys]
    matrix = np.concatenate([emb.matrix for emb in loaded])
    order = np.argsort(np.array(keys, dtype=object), kind="stable")
    unusable = [row for path in shards for row in read_unusable(Path(path))]
    meta = {k: v for k, v in loaded[0].meta.items() if k not in ("shard", "count")}
    meta["unusable"] = len(unusable)
    save_embeddings(out, [keys[i] for i in order], matrix[order], meta, unusable_report(unusable))
    return load_embeddings(out)


def find_shards(folder: str | Path) -> list[Path]:
    """The ``shard-i-of-n`` directories directly under ``folder``."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_dir() and SHARD_DIR.match(p.name)) if folder.is_dir() else []


def merge_lock_path(out: Path) -> Path:
    """The lock file that shards merging into ``out`` take turns on (beside ``out``, not in it)."""
    return out.parent / f".{out.name}.merge-lock"


def try_merge(out: Path, count: int) -> bool:
    """Merge the shards under ``out`` if all are complete; True once ``out`` holds the merge.

    The lock beside ``out`` (not in it: the merge replaces ``out``) is released by the
    kernel when its holder ends, so a killed merge never blocks the next run's.
    """
    shards = [shard_dir(out, i, count) for i in range(count)]
    lock_path = merge_lock_path(out)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_complete(out) and not any(path.exists() for path in shards):
            logger.info("another process merged the shards into %s", out)
            return True
        waiting = sum(not is_complete(path) for path in shards)
        if waiting:
            logger.info("%d of %d shards still running; the last to finish merges them into %s", waiting, count, out)
            return False
        merged = merge_shards(shards, out)
        lock_path.unlink(missing_ok=True)  # only a finished merge removes it: a late shard finds OUT merged
    logger.info("merged %d shards into %s (%d embeddings)", count, out, len(merged))
    return True
