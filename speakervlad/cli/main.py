"""Entry point of the ``speakervlad`` command.

``COMMANDS`` maps each sub-command to the module (``speakervlad/cli/<module>.py``)
whose ``register(subparsers)`` adds it and sets ``func(args) -> int`` as its
handler. Only the module of the command being run is imported, so a command
does not pay for the imports of the others. Errors a user can cause
(:class:`SpeakerVladError`) become one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import SpeakerVladError

COMMANDS = {
    "model": "model",
    "synth": "synth",
    "prepare": "prepare",
    "train": "train",
    "average": "train",
    "embed": "embed",
    "extract": "extract",
    "extract-merge": "extract",
    "score": "score",
    "eval": "evaluate",
    "calibrate": "calibrate",
    "enroll": "enroll",
    "verify": "enroll",
    "identify": "enroll",
    "speakers": "enroll",
    "serve": "serve",
    "export": "export",
    "explain": "explain",
}

EXIT_ERROR = 2


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` alone, or for every command when it is None or unknown."""
    parser = argparse.ArgumentParser(
        prog="speakervlad",
        description="Speaker verification with ResNet-34 + GhostVLAD: train, embed, score, enroll and verify.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module in wanted:
        importlib.import_module(f"{__package__}.{module}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
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
