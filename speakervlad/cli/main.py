"""Entry point of the ``speakervlad`` command.

Each module in ``COMMANDS`` exposes ``register(subparsers)``, which adds its
sub-command(s) and sets ``func(args) -> int`` as the handler. Errors a user can
cause (:class:`SpeakerVladError`) become one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import SpeakerVladError

COMMANDS = [
    "model",
    "embed",
    "enroll",
    "serve",
    "score",
    "evaluate",
    "calibrate",
    "synth",
]

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speakervlad", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except SpeakerVladError as err:
        print(f"speakervlad {args.command}: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"speakervlad {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
