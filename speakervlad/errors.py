"""Exceptions a user can cause. Each says what went wrong and what to do.

The CLI turns any :class:`SpeakerVladError` into one line on stderr and a
non-zero exit code; anything else is a bug and keeps its traceback.
"""


class SpeakerVladError(Exception):
    """Base class of every error a user can cause."""


class ConfigError(SpeakerVladError):
    """A configuration file or override is invalid (unknown key, bad value)."""


class AudioError(SpeakerVladError):
    """Audio could not be used: missing, empty, corrupt, silent, too short, ..."""

    def __init__(self, source: object, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class InsufficientSpeechError(AudioError):
    """A recording holds too little speech (as the voice activity detector finds it) for its use."""

    def __init__(self, source: object, speech_seconds: float, required_seconds: float, purpose: str, advice: str):
        self.speech_seconds, self.required_seconds = speech_seconds, required_seconds
        super().__init__(source, f"{speech_seconds:.2f} s of speech found, {purpose} needs at least "
                         f"{required_seconds:.2f} s: {advice}")


class CheckpointError(SpeakerVladError):
    """A checkpoint is unreadable, of an unknown format, or does not fit its config."""


class TrialError(SpeakerVladError):
    """A trial list is malformed or names utterances that have no embedding."""


class EmbeddingError(SpeakerVladError):
    """An embedding directory is missing, malformed or inconsistent."""


class CalibrationError(SpeakerVladError):
    """Calibration is missing, or cannot be fitted on the given scores."""


class StoreError(SpeakerVladError):
    """The enrollment store is unusable (bad schema version, other model, bad id)."""


class StoreUnavailableError(StoreError):
    """The store cannot be read or written now (locked past the busy timeout, disk full, I/O
    error); nothing was changed, and the same call may succeed later."""


class UnknownSpeakerError(StoreError):
    """A speaker id is not enrolled."""
