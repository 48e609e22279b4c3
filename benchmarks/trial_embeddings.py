"""Generated embeddings for every key of some trial lists (for benchmarks and trying the CLI).

Each speaker (the first path component of a key, e.g. ``id10270``) gets a
random centre; each utterance is its speaker's centre plus Gaussian noise.
Seeded, so the same command gives the same embeddings. Synthetic: this proves
plumbing and speed, not accuracy.

    python benchmarks/trial_embeddings.py ../shared/data/voxceleb1-trials/*.txt -o /tmp/vox1_emb
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from speakervlad.embedding.directory import Embeddings, save_embeddings
from speakervlad.scoring.trials import read_trials

DEFAULT_DIM, DEFAULT_NOISE = 256, 1.8  # EER around 3% on the VoxCeleb1 lists


def generated_embeddings(keys: list[str], dim: int = DEFAULT_DIM, noise: float = DEFAULT_NOISE,
                         seed: int = 0) -> Embeddings:
    """Speaker centre plus noise for each key, (N, dim) float32."""
    rng = np.random.default_rng(seed)
    speakers, speaker_of = np.unique([key.split("/")[0] for key in keys], return_inverse=True)
    centres = rng.standard_normal((len(speakers), dim), dtype=np.float32)
    return Embeddings(list(keys), centres[speaker_of] + noise * rng.standard_normal((len(keys), dim), dtype=np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trials", nargs="+", type=Path, help="trial lists whose keys need embeddings")
    parser.add_argument("-o", "--output", required=True, type=Path, help="embedding directory to write")
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM)
    parser.add_argument("--noise", type=float, default=DEFAULT_NOISE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keys = sorted({key for path in args.trials for key in read_trials(path).keys.tolist()})
    emb = generated_embeddings(keys, args.dim, args.noise, args.seed)
    save_embeddings(args.output, emb.keys, emb.matrix,
                    {"model": f"generated-d{args.dim}-noise{args.noise}-seed{args.seed}"})
    print(f"wrote {len(keys)} generated {args.dim}-d embeddings to {args.output}")


if __name__ == "__main__":
    main()
