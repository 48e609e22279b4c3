"""``python -m speakervlad.train ARGS`` = ``speakervlad train ARGS``, for torchrun.

>>> # torchrun --nproc_per_node=2 -m speakervlad.train --config resnet34_tstp --data DATA --exp EXP
"""
import sys

from ..cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
