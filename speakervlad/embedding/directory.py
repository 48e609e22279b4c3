"""The embedding directory format: a float32 matrix plus its keys.

::

    EMB_DIR/embeddings.npy   float32 (N, E), row i is the embedding of keys[i]
    EMB_DIR/keys.txt         N lines, one utterance key each (path relative to the audio root)
    EMB_DIR/meta.json        {"format": 1, "dim": E, "count": N, "model": fingerprint, ...}

The matrix is memory-mapped on load, so a directory with millions of rows
opens instantly. Directories are written to a temporary sibling and renamed
into place, so a killed writer never leaves a half-written directory, and a
reader that sees ``keys.txt`` sees every file written with it.

>>> import numpy as np, tempfile
>>> d = tempfile.mkdtemp() + "/emb"
>>> save_embeddings(d, ["a.wav", "b.wav"], np.eye(2, 3, dtype=np.float32))
>>> load_embeddings(d).get(["b.wav"]).tolist()
[[0.0, 1.0, 0.0]]
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import EmbeddingError

FORMAT_VERSION = 1
MATRIX_FILE, KEYS_FILE, META_FILE = "embeddings.npy", "keys.txt", "meta.json"


@dataclass
class Embeddings:
    keys: list[str]
    matrix: np.ndarray  # (N, E) float32
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {key: i for i, key in enumerate(self.keys)}
        if len(self._index) != len(self.keys):
            raise EmbeddingError("duplicate keys in embeddings")

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def missing(self, keys: Iterable[str]) -> list[str]:
        return [key for key in keys if key not in self._index]

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """Row indices of ``keys``; raises EmbeddingError naming missing ones."""
        absent = self.missing(keys)
        if absent:
            shown = ", ".join(absent[:5])
            raise EmbeddingError(f"{len(absent)} keys have no embedding (first: {shown})")
        return np.fromiter((self._index[key] for key in keys), dtype=np.int64, count=len(keys))

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """The embeddings of ``keys`` as a new (len(keys), E) float32 array."""
        return np.asarray(self.matrix[self.rows(keys)], dtype=np.float32)


def save_embeddings(
    path: str | Path, keys: Sequence[str], matrix: np.ndarray, meta: dict | None = None,
    files: Mapping[str, str] | None = None,
) -> None:
    """Write an embedding directory atomically (replacing an existing one).

    ``files``: more text files (name -> content) that appear with the rows in one rename.
    """
    path = Path(path)
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(keys):
        raise EmbeddingError(f"{len(keys)} keys but a matrix of shape {matrix.shape}")
    bad = [key for key in keys if not key or any(c in key for c in "\n\r")]
    if bad:
        raise EmbeddingError(f"keys must be non-empty single-line strings, got {bad[0]!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        np.save(tmp / MATRIX_FILE, matrix)
        (tmp / KEYS_FILE).write_text("".join(f"{key}\n" for key in keys))
        info = {"format": FORMAT_VERSION, "dim": int(matrix.shape[1]), "count": len(keys)}
        (tmp / META_FILE).write_text(json.dumps({**(meta or {}), **info}, indent=1))
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def load_embeddings(path: str | Path, mmap: bool = True) -> Embeddings:
    """Open an embedding directory (memory-mapped by default)."""
    path = Path(path)
    for name in (MATRIX_FILE, KEYS_FILE):
        if not (path / name).is_file():
            raise EmbeddingError(
                f"{path}: not an embedding directory (missing {name}); "
                "create one with `speakervlad embed` or `speakervlad extract`"
            )
    matrix = np.load(path / MATRIX_FILE, mmap_mode="r" if mmap else None)
    keys = (path / KEYS_FILE).read_text().splitlines()
    if matrix.ndim != 2 or matrix.shape[0] != len(keys):
        raise EmbeddingError(f"{path}: {len(keys)} keys but a matrix of shape {matrix.shape}")
    meta = json.loads((path / META_FILE).read_text()) if (path / META_FILE).is_file() else {}
    return Embeddings(keys, matrix, meta)
