"""The ``descentlab`` command: parses arguments, calls the library, maps known errors to exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__


def _list(args: argparse.Namespace) -> int:
    from .optim import OPTIMIZERS

    width = max(map(len, OPTIMIZERS))
    print("optimizers (descentlab.optim):")
    for name, cls in OPTIMIZERS.items():
        print(f"  {name:<{width}}  {cls.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="descentlab",
        description="Gradient descent for deep learning, done right and shown plainly.",
    )
    parser.add_argument("--version", action="version", version=f"descentlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="list the optimizers, one line each")
    listing.set_defaults(func=_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for a user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, LookupError, OSError) as err:
        # Known user errors: one line, no traceback.
        print(f"descentlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"descentlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
