#!/usr/bin/env python3
"""Print settings of a config after overrides: ``local/config_value.py CONFIG KEY[,KEY...] [key=value ...]``.

    local/config_value.py conf/resnet34_ghostvlad.yaml augment.noise_prob,train.epochs   # -> 0.6 150

The values are printed on one line, separated by spaces, in the order asked.
"""
from __future__ import annotations

import sys

from speakervlad.config import apply_overrides, load_config
from speakervlad.errors import SpeakerVladError


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    config, keys, overrides = argv[0], argv[1].split(","), argv[2:]
    try:
        cfg = apply_overrides(load_config(config), overrides)
    except SpeakerVladError as err:
        print(f"config_value: {err}", file=sys.stderr)
        return 1
    values = []
    for key in keys:
        node = cfg
        for part in key.split("."):
            if not hasattr(node, part):
                print(f"config_value: {config} has no setting {key!r}", file=sys.stderr)
                return 1
            node = getattr(node, part)
        values.append(str(node))
    print(" ".join(values))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
