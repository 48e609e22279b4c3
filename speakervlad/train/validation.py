"""Validation EER during training: embed a trial list's audio, cosine-score, EER.

>>> # validator = Validator("heldout/trials.txt", "heldout/audio"); eer = validator(model)
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from torch import nn

from ..audio import audio_duration
from ..embedding.embedder import l2_normalize
from ..embedding.torch_embedder import EmbeddingModel
from ..errors import TrialError
from ..scoring.cosine import rowwise_dot
from ..scoring.metrics import eer
from ..scoring.trials import read_trials

logger = logging.getLogger(__name__)


class Validator:
    """EER of a model on ``trials`` (keys relative to ``audio_root``).

    Files are read again at each validation, ``group`` at a time and batched by
    similar length, so memory stays bounded for long lists.
    """

    def __init__(self, trials: str | Path, audio_root: str | Path, batch_size: int = 16, group: int = 256):
        self.trials = read_trials(trials)
        root = Path(audio_root)
        self.paths = [root / key for key in self.trials.keys.tolist()]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise TrialError(
                f"{len(missing)} trial file(s) are not under {root}, e.g. {missing[:3]}; "
                "pass the folder the trial keys are relative to"
            )
        if self.trials.n_target == 0 or self.trials.n_nontarget == 0:
            raise TrialError(f"{trials}: an EER needs both target and non-target trials")
        # longest first: the first batch shows at once whether memory suffices
        self.order = np.argsort([-audio_duration(p) for p in self.paths], kind="stable")
        self.batch_size, self.group = batch_size, group

    def embeddings(self, model: nn.Module) -> np.ndarray:
        """(U, E) L2-normalised embeddings of the trial keys (``model`` is left in eval mode)."""
        embedder = EmbeddingModel(model, device=next(model.parameters()).device)
        rows = np.zeros((len(self.paths), model.embedding_dim), dtype=np.float32)
        for start in range(0, len(self.order), self.group):
            chosen = self.order[start:start + self.group]
            rows[chosen] = embedder.embed_many([self.paths[i] for i in chosen], self.batch_size)
        return l2_normalize(rows, [str(p) for p in self.paths], in_place=True)

    def scores(self, model: nn.Module) -> np.ndarray:
        """(T,) cosine scores of the trials."""
        return rowwise_dot(self.embeddings(model), self.trials.enroll_idx, self.trials.test_idx)

    def __call__(self, model: nn.Module) -> float:
        """The EER (a fraction, 0.05 = 5 %)."""
        scores = self.scores(model)
        value = eer(scores, self.trials.labels)[0]
        logger.info("validation: %d trials, EER %.2f%%", len(self.trials), 100 * value)
        return value
