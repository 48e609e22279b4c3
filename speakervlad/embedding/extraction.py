"""Batch extraction of embeddings at scale (``speakervlad extract``).

1. **Items**: keys (paths relative to an audio root) from a list file, a TSV
   utterance list (:mod:`speakervlad.data.lists`) or every audio file under a folder.
2. **Shard**: the keys sorted, every n-th from the i-th (``--shard i/n``, or
   ``RANK``/``WORLD_SIZE`` under ``torchrun``): a deterministic partition.
3. **Plan**: durations from file headers (``ffprobe`` for M4A and the like),
   longest first, grouped into batches of similar length (at most ``batch_size``
   files, ``max_batch_seconds`` of padded audio, and padding of at most
   ``max_padding`` (3 %) of the batch's audio: padded frames cost as much as real
   ones). Files longer than the
   model's chunk length go alone through its chunked path, in bounded memory.
4. **Run**: a thread pool decodes the next batches (and, with ``vad``, cuts out
   their speech) while the model embeds the current one. Finished rows are
   saved every ``part_seconds`` as parts under ``OUT/.parts`` (atomic writes),
   so a killed run resumes where it stopped and a re-run skips every key done. Unusable files are counted, listed in
   ``OUT/unusable.tsv`` and skipped.
5. **Finish**: the parts become the embedding directory ``OUT`` (rows in key order).

The directory records its VAD options (``meta.json`` ``vad``, null: none); rows made with other
options, or another model, are never reused. Too little speech to embed makes a file unusable.

A sharded run writes ``OUT/shard-i-of-n``; the last shard to finish merges all
of them into ``OUT`` (the same rows as an unsharded run). Shards made on other
machines are merged with :func:`~speakervlad.embedding.shards.merge_shards` (``speakervlad extract-merge``).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..audio import is_audio_file
from ..data.readable import probe_duration
from ..errors import AudioError, ConfigError, EmbeddingError, TrialError
from .directory import Embeddings, load_embeddings, save_embeddings
from .embedder import Embedder
from .shards import (
    UNUSABLE_FILE,
    Unusable,
    find_shards,
    is_complete,
    read_unusable,
    shard_dir,
    shard_items,
    try_merge,
    unusable_report,
)
from .vad import VadOptions

logger = logging.getLogger(__name__)

PARTS_DIR = ".parts"


@dataclass(frozen=True)
class Item:
    """One recording to embed: its ``key`` (relative path) and file ``path``."""

    key: str
    path: str


@dataclass
class ExtractResult:
    out: Path  # the embedding directory written (this shard's, or the merged one)
    embedded: int  # rows in ``out``
    computed: int  # rows computed by this run (the others were done before)
    unusable: list[Unusable] = field(default_factory=list)  # as listed in out/unusable.tsv
    audio_seconds: float = 0.0  # audio embedded by this run
    wall_seconds: float = 0.0
    merged: bool = False  # this process merged all shards into the final directory


# ---- items -----------------------------------------------------------------
def list_items(list_file: str | Path | None = None, audio_root: str | Path | None = None) -> list[Item]:
    """Items of a list file (keys resolved against ``audio_root``) or of every audio file under it.

    A list file holds one key per line (``#`` comments allowed), or is a TSV
    utterance list ``key<TAB>speaker<TAB>path`` (paths relative to the list's folder).
    """
    if list_file is None:
        if audio_root is None:
            raise ConfigError("give a list file (--list) or an audio folder (--audio-root)")
        root = Path(audio_root)
        if not root.is_dir():
            raise ConfigError(f"{root}: no such folder")
        files = sorted(p for p in root.rglob("*") if p.is_file() and is_audio_file(p))
        if not files:
            raise ConfigError(f"{root}: no audio files below it")
        return [Item(p.relative_to(root).as_posix(), str(p)) for p in files]
    path = Path(list_file)
    if not path.is_file():
        raise ConfigError(f"{path}: no such list file")
    lines = path.read_text(encoding="utf-8").splitlines()
    if any("\t" in line for line in lines if not line.startswith("#")):
        return _items_of_utterance_list(path)
    root = Path(audio_root) if audio_root is not None else Path()
    items, seen = [], {}
    for number, line in enumerate(lines, 1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if key in seen:
            raise ConfigError(f"{path}:{number}: key {key!r} is already listed on line {seen[key]}")
        seen[key] = number
        items.append(Item(key, str(root / key)))
    if not items:
        raise ConfigError(f"{path}: lists no files")
    return items


def _items_of_utterance_list(path: Path) -> list[Item]:
    from ..data.lists import read_list

    utts = read_list(path)
    perturbed = sum(u.speed != 1.0 for u in utts)
    if perturbed:
        logger.info("%s: leaving out %d speed-perturbed entries (recordings are embedded as they are)", path, perturbed)
    return [Item(u.key, u.path) for u in utts if u.speed == 1.0]


# ---- planning ---------------------------------------------------------------
#: padded audio a batch may add, as a fraction of its real audio (padding is computed, then masked)
MAX_PADDING = 0.03


def plan_batches(
    durations: Sequence[tuple[Item, float]],
    batch_size: int,
    max_batch_seconds: float,
    whole_seconds: float,
    max_padding: float = MAX_PADDING,
) -> list[list[tuple[Item, float]]]:
    """Longest first, neighbours in length batched together; long files alone.

    A batch ends at ``batch_size`` files, at ``max_batch_seconds`` of padded
    audio, or before its padding would exceed ``max_padding`` of its real audio.
    """
    ordered = sorted(durations, key=lambda pair: (-pair[1], pair[0].key))
    batches: list[list[tuple[Item, float]]] = []
    current: list[tuple[Item, float]] = []
    real = 0.0
    for pair in ordered:
        padded = current[0][1] * (len(current) + 1) if current else 0.0
        if current and (
            len(current) >= batch_size
            or current[0][1] > whole_seconds
            or padded > max_batch_seconds
            or padded > (1.0 + max_padding) * (real + pair[1])
        ):
            batches.append(current)
            current, real = [], 0.0
        current.append(pair)
        real += pair[1]
    if current:
        batches.append(current)
    return batches


def _probe(items: Sequence[Item], jobs: int) -> tuple[list[tuple[Item, float]], list[Unusable]]:
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        probes = list(tqdm(pool.map(lambda item: probe_duration(item.path), items), total=len(items),
                           desc="reading headers", unit="file", disable=None, leave=False))
    usable, bad = [], []
    for item, (seconds, reason) in zip(items, probes):
        if reason is None:
            usable.append((item, float(seconds)))
        else:
            bad.append((item.key, item.path, reason))
    return usable, bad


# ---- parts on disk ----------------------------------------------------------
class PartStore:
    """Finished rows buffered and saved as small embedding directories under ``folder``."""

    def __init__(self, folder: Path, fingerprint: str, part_seconds: float, vad: VadOptions | None = None):
        self.folder, self.fingerprint, self.part_seconds = folder, fingerprint, part_seconds
        self.vad = vad.to_dict() if vad else None
        self._keys: list[str] = []
        self._rows: list[np.ndarray] = []
        self._last_flush = time.monotonic()

    def add(self, keys: Sequence[str], matrix: np.ndarray) -> None:
        self._keys.extend(keys)
        self._rows.append(np.asarray(matrix, dtype=np.float32))
        if time.monotonic() - self._last_flush >= self.part_seconds:
            self.flush()

    def flush(self) -> None:
        if self._keys:
            name = f"part-{time.time_ns():020d}-{os.getpid()}"
            save_embeddings(self.folder / name, self._keys, np.concatenate(self._rows),
                            {"model": self.fingerprint, "vad": self.vad})
            logger.debug("saved %d rows to %s", len(self._keys), self.folder / name)
        self._keys, self._rows = [], []
        self._last_flush = time.monotonic()


def _done_rows(fingerprint: str, vad: VadOptions | None, out: Path, target: Path) -> dict[str, np.ndarray]:
    """Rows this model already computed: in ``out``, its shard directories, and their parts.

    Reading other shards' work lets a re-run with another shard count reuse it.
    """
    done: dict[str, np.ndarray] = {}
    folders = dict.fromkeys([out, target, *find_shards(out)])
    for folder in folders:
        parts_folder = folder / PARTS_DIR
        parts = sorted(parts_folder.iterdir()) if parts_folder.is_dir() else []
        if folder == target:  # temporaries left by killed writers of this run's parts
            for leftover in [p for p in parts if p.name.startswith(".")]:
                shutil.rmtree(leftover, ignore_errors=True)
        for part in [folder] + [p for p in parts if not p.name.startswith(".")]:
            if not is_complete(part):
                continue
            emb = _of_model(part, fingerprint, vad)
            done.update(zip(emb.keys, emb.matrix))
    return done


def _of_model(folder: Path, fingerprint: str, vad: VadOptions | None) -> Embeddings:
    """The embedding directory ``folder``, refused when another model, or other VAD options, made it."""
    emb = load_embeddings(folder)
    if emb.meta.get("model") != fingerprint:
        raise EmbeddingError(f"{folder} holds embeddings of another model ({emb.meta.get('model')}, not "
                             f"{fingerprint}); delete it or write to another directory")
    if emb.meta.get("vad") != (wanted := vad.to_dict() if vad else None):
        raise EmbeddingError(f"{folder} holds embeddings made with VAD {emb.meta.get('vad')}, not {wanted}; "
                             "delete it or write to another directory")
    return emb


# ---- running ----------------------------------------------------------------
def extract(
    model: Embedder,
    items: Sequence[Item],
    out: str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
    batch_size: int = 16,
    max_batch_seconds: float = 120.0,
    max_padding: float = MAX_PADDING,
    jobs: int = 2,
    part_seconds: float = 60.0,
    meta: dict | None = None,
    progress: bool | None = None,
    keep_existing: bool = False,
    vad: VadOptions | None = None,
) -> ExtractResult:
    """Embed ``items`` (this process's shard of them) into the embedding directory ``out``.

    ``out`` holds exactly the usable ``items``, or with ``keep_existing`` (a cache,
    unsharded) also the rows it held before. ``progress=None`` shows a progress
    bar when stderr is a terminal. ``vad``: embed each recording's speech alone.
    """
    started = time.perf_counter()
    out = Path(out)
    index, count = shard
    if keep_existing and count > 1:
        raise ConfigError("keep_existing is for one process adding to a cache, not for sharded runs")
    mine = shard_items(items, index, count)
    target = shard_dir(out, index, count) if count > 1 else out
    done = _done_rows(model.fingerprint, vad, out, target)
    store = PartStore(target / PARTS_DIR, model.fingerprint, part_seconds, vad)
    todo = [item for item in mine if item.key not in done]
    logger.info("%s%d recordings: %d done before, %d to embed",
                f"shard {index}/{count}: " if count > 1 else "", len(mine), len(mine) - len(todo), len(todo))
    if count > 1 and is_complete(out):  # the shards were merged already
        known_bad = {key for key, _, _ in read_unusable(out)}
        missing = [item for item in todo if item.key not in known_bad]
        if missing:
            raise EmbeddingError(
                f"{out} holds a finished (merged) extraction that lacks {len(missing)} keys of shard {index}/{count} "
                f"(e.g. {missing[0].key}); run without --shard to add them, or choose another -o"
            )
        merged = load_embeddings(out)
        return ExtractResult(out, len(merged), 0, read_unusable(out), 0.0, time.perf_counter() - started, True)
    usable, unusable = _probe(todo, jobs)
    batches = plan_batches(usable, batch_size, max_batch_seconds, model.whole_seconds, max_padding)
    computed, seconds = 0, 0.0
    decoded = _decoded(model, batches, jobs, 2 * max_batch_seconds, progress, vad)
    try:
        for waves, failed in decoded:
            unusable.extend(failed)
            if waves:
                keys = [key for key, _ in waves]
                matrix = model.embed_waveforms([wave for _, wave in waves], batch_size=len(waves))
                store.add(keys, matrix)
                done.update(zip(keys, matrix))
                computed += len(keys)
                seconds += sum(len(wave) for _, wave in waves) / model.sample_rate
    finally:
        decoded.close()  # stops the decoding threads at once if embedding failed
        store.flush()
    info = {**(meta or {}), "model": model.fingerprint, "vad": vad.to_dict() if vad else None,
            "unusable": len(unusable)}
    if count > 1:
        info["shard"] = [index, count]
    kept = sorted(done) if keep_existing else [item.key for item in mine if item.key in done]
    report = unusable_report(unusable)
    unchanged = (is_complete(target) and computed == 0 and load_embeddings(target).keys == kept
                 and _text(target / UNUSABLE_FILE) == report[UNUSABLE_FILE])
    if not unchanged:
        save_embeddings(target, kept, np.stack([done[key] for key in kept]) if kept else
                        np.zeros((0, model.embedding_dim), np.float32), info, report)
    _report(unusable, target)
    result = ExtractResult(target, len(kept), computed, unusable, seconds, 0.0)
    if count > 1 and try_merge(out, count):
        result.out, result.merged = out, True
        result.embedded, result.unusable = len(load_embeddings(out)), read_unusable(out)
    result.wall_seconds = time.perf_counter() - started
    return result


def _decoded(
    model: Embedder, batches: list[list[tuple[Item, float]]], jobs: int, prefetch_seconds: float,
    progress: bool | None, vad: VadOptions | None,
) -> Iterator[tuple[list[tuple[str, np.ndarray]], list[Unusable]]]:
    """Yield ([(key, wave)], [unusable]) per batch, with the next batches decoding in the background."""
    total = sum(seconds for batch in batches for _, seconds in batch)
    bar = tqdm(total=round(total, 1), unit="s", desc="embedding audio", dynamic_ncols=True, smoothing=0.1,
               disable=None if progress is None else not progress)
    pending: deque[tuple[list, list[Future]]] = deque()
    upcoming = iter(batches)
    pool = ThreadPoolExecutor(max(1, jobs))
    try:
        queued, exhausted, files, bad = 0.0, False, 0, 0
        while True:
            while not exhausted and (not pending or queued < prefetch_seconds):
                batch = next(upcoming, None)
                if batch is None:
                    exhausted = True
                    break
                pending.append((batch, [pool.submit(_load, model, item, vad) for item, _ in batch]))
                queued += sum(seconds for _, seconds in batch)
            if not pending:
                break
            batch, futures = pending.popleft()
            queued -= sum(seconds for _, seconds in batch)
            waves, failed = [], []
            for (item, _), future in zip(batch, futures):
                wave = future.result()
                if isinstance(wave, AudioError):
                    failed.append((item.key, item.path, wave.problem))
                else:
                    waves.append((item.key, wave))
            yield waves, failed
            files, bad = files + len(waves), bad + len(failed)
            bar.update(round(sum(seconds for _, seconds in batch), 1))
            bar.set_postfix(files=files, unusable=bad, refresh=False)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def _load(model: Embedder, item: Item, vad: VadOptions | None) -> np.ndarray | AudioError:
    try:
        return model.load(item.path, name=item.path, vad=vad)
    except AudioError as err:
        return err


def _text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _report(unusable: Sequence[Unusable], folder: Path) -> None:
    if unusable:
        shown = "; ".join(f"{path}: {why}" for _, path, why in unusable[:3])
        logger.warning("skipped %d unusable recordings (e.g. %s); list: %s",
                       len(unusable), shown, folder / UNUSABLE_FILE)


def embed_keys(model: Embedder, keys: Sequence[str], audio_root: str | Path, cache: str | Path, *,
               batch_size: int = 16, jobs: int = 2, vad: VadOptions | None = None) -> Embeddings:
    """Embeddings of ``keys`` (paths relative to ``audio_root``), through the cache ``cache``.

    The cache is an embedding directory of one model: keys it holds are reused,
    the others embedded by :func:`extract` and added to it (rows of earlier keys
    stay), so a re-run of ``eval --model`` embeds only what is new. Keys that
    are no file under ``audio_root`` raise :class:`TrialError` (a wrong root);
    unusable audio is skipped and reported, and its trials have no embedding.
    """
    audio_root, cache = Path(audio_root), Path(cache)
    cached = set(_of_model(cache, model.fingerprint, vad).keys) if is_complete(cache) else set()
    todo = [key for key in dict.fromkeys(keys) if key not in cached]
    absent = [key for key in todo if not (audio_root / key).is_file()]
    if absent:
        raise TrialError(f"{len(absent)} of {len(todo)} utterances to embed are not files under {audio_root} "
                         f"(first: {', '.join(absent[:5])}); check --audio-root")
    logger.info("%d utterances needed: %d from the cache %s, %d to embed", len(set(keys)),
                len(set(keys)) - len(todo), cache, len(todo))
    if todo or not is_complete(cache):
        extract(model, [Item(key, str(audio_root / key)) for key in todo], cache, batch_size=batch_size,
                jobs=jobs, meta={"audio_root": str(audio_root)}, keep_existing=True, vad=vad)
    return load_embeddings(cache)
