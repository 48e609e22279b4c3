"""The experiment directory: resolved config, checkpoints and the metrics CSV.

Layout of ``EXP``::

    config.yaml            resolved config of the run (checked again on --resume)
    speakers.txt           class index -> speaker id (line i = class i)
    train.tsv              the training list actually used (readable files only)
    unreadable.txt         files skipped because they could not be read
    metrics.csv            one row per epoch
    checkpoints/epoch_NNN.pt               after NNN complete epochs
    checkpoints/epoch_NNN_step_SSSSSS.pt   interrupted SSSSSS steps into epoch NNN+1
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from ..config import ExperimentConfig, load_config, to_dict
from ..errors import CheckpointError, ConfigError

CHECKPOINT_DIR = "checkpoints"
METRICS_FIELDS = ["epoch", "loss", "acc", "lr", "margin", "samples_per_s", "seconds", "val_eer"]
#: settings that may change on --resume without changing what is trained
RUN_ONLY_KEYS = {
    "train.max_minutes",
    "train.log_every",
    "train.validate_every",
    "train.keep_checkpoints",
    "data.num_workers",
}
_NAME = re.compile(r"^epoch_(\d+)(?:_step_(\d+))?\.pt$")


def checkpoint_path(exp_dir: Path, epochs_done: int, step: int = 0) -> Path:
    """``epoch_NNN.pt`` after complete epochs, ``epoch_NNN_step_SSSSSS.pt`` mid-epoch."""
    name = f"epoch_{epochs_done:03d}" + (f"_step_{step:06d}" if step else "") + ".pt"
    return Path(exp_dir) / CHECKPOINT_DIR / name


def list_checkpoints(exp_dir: Path) -> list[tuple[int, int, Path]]:
    """``(epochs_done, step, path)`` of every checkpoint, in training order."""
    folder = Path(exp_dir) / CHECKPOINT_DIR
    found = []
    for path in folder.glob("epoch_*.pt") if folder.is_dir() else []:
        match = _NAME.match(path.name)
        if match:
            found.append((int(match[1]), int(match[2] or 0), path))
    return sorted(found)


def latest_checkpoint(exp_dir: Path) -> Path | None:
    found = list_checkpoints(exp_dir)
    return found[-1][2] if found else None


def epoch_checkpoints(exp_dir: Path) -> list[Path]:
    """End-of-epoch checkpoints, oldest first."""
    return [path for _, step, path in list_checkpoints(exp_dir) if step == 0]


def prune_checkpoints(exp_dir: Path, keep: int) -> None:
    """Keep the last ``keep`` epoch checkpoints (0 = all); drop mid-epoch ones they supersede."""
    found = list_checkpoints(exp_dir)
    full = [(e, path) for e, step, path in found if step == 0]
    if not full:
        return
    last_full = full[-1][0]
    for epochs_done, step, path in found:
        if step and epochs_done < last_full:
            path.unlink(missing_ok=True)
    if keep > 0:
        for _, path in full[:-keep]:
            path.unlink(missing_ok=True)


def config_differences(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """``section.key: old -> new`` for every setting that differs."""
    flat_old, flat_new = _flatten(to_dict(old)), _flatten(to_dict(new))
    return [
        f"{key}: {flat_old.get(key)!r} -> {flat_new.get(key)!r}"
        for key in sorted(set(flat_old) | set(flat_new))
        if flat_old.get(key) != flat_new.get(key)
    ]


def check_experiment(
    exp_dir: Path, config: ExperimentConfig, resume: bool, force: bool = False
) -> None:
    """Refuse unsafe reuse of ``exp_dir`` (reads only; safe on every process).

    A fresh run refuses a directory that already has checkpoints; a resume
    refuses a config that differs from the saved ``config.yaml`` (except
    run-only settings such as ``train.max_minutes``). ``force`` allows both.
    """
    exp_dir = Path(exp_dir)
    saved = exp_dir / "config.yaml"
    if not resume:
        if list_checkpoints(exp_dir) and not force:
            raise ConfigError(
                f"{exp_dir} already holds checkpoints; pass --resume to continue that run, "
                "--force to start over in it, or choose another --exp"
            )
        return
    if not saved.is_file() or not list_checkpoints(exp_dir):
        raise CheckpointError(
            f"nothing to resume in {exp_dir}: it needs config.yaml and checkpoints/epoch_*.pt; "
            "start without --resume"
        )
    changed = [
        line for line in config_differences(load_config(saved), config)
        if line.split(":", 1)[0] not in RUN_ONLY_KEYS
    ]
    if changed and not force:
        raise ConfigError(
            f"cannot resume {exp_dir} with a different config ({'; '.join(changed)}; "
            "left: saved config.yaml, right: now): the model, schedule or data would no longer "
            "match the checkpoints; drop those overrides, or pass --force to resume anyway"
        )


class MetricsLog:
    """``EXP/metrics.csv``: one row per epoch (``METRICS_FIELDS``)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def truncate(self, epochs_done: int) -> None:
        """Drop rows after ``epochs_done`` (a resumed run rewrites them)."""
        kept = [row for row in self.rows() if int(row["epoch"]) <= epochs_done]
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRICS_FIELDS)
            writer.writeheader()
            writer.writerows(kept)

    def append(self, row: dict) -> None:
        new = not self.path.is_file()
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRICS_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({key: _format(row.get(key, "")) for key in METRICS_FIELDS})

    def rows(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as handle:
            return list(csv.DictReader(handle))


def _format(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, float) else value


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
