"""Model parts: trunks, poolings, margin heads and the SpeakerNet that joins them."""
from .heads import build_head
from .speaker_net import SpeakerNet, build_model, parameter_counts

__all__ = ["SpeakerNet", "build_head", "build_model", "parameter_counts"]
