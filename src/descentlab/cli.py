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


def _names(kind: str, text: str, table: dict) -> list:
    from ._registry import lookup

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"no {kind} given")
    return [lookup(kind, n, table) for n in names]


def _bench(args: argparse.Namespace) -> int:
    import torch

    from . import bench
    from ._io import writable_path, write_text_atomic

    workloads = [w.scaled(args.scale) for w in _names("workload", args.workloads, bench.WORKLOADS)]
    algorithms = _names("optimizer", args.optimizers, bench.ALGORITHMS)
    if args.steps < 1 or args.rounds < 1:
        raise ValueError(f"--steps and --rounds must be at least 1; received {args.steps} and {args.rounds}")
    if not 0 < args.scale <= 4:
        raise ValueError(f"--scale must be in (0, 4]; received {args.scale}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here")
    out = writable_path(args.out)
    report = bench.run(
        workloads, algorithms, device=device, steps=args.steps, rounds=args.rounds,
        progress=bench.progress_printer(),
    )  # fmt: skip
    print(file=sys.stderr)
    print(bench.table(report))
    write_text_atomic(out, report.to_json())
    print(f"results written to {out}")
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
    timing = commands.add_parser(
        "bench",
        help="time every optimizer's step on each implementation, against torch.optim",
        description="Time step() for descentlab's fast and per-tensor paths and torch.optim's for-loop, "
        "foreach and fused paths, in one process, with a memory-bandwidth probe.",
    )
    timing.add_argument(
        "--workloads", default="transformer,many-small", help="comma-separated (default: both)"
    )
    timing.add_argument("--optimizers", default="sgd,adagrad,rmsprop,adam,adamw", help="comma-separated")
    timing.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    timing.add_argument("--steps", type=int, default=10, help="timed steps per round (default 10)")
    timing.add_argument(
        "--rounds", type=int, default=3, help="rounds; implementations take turns (default 3)"
    )
    timing.add_argument("--scale", type=float, default=1.0, help="scale the workloads' sizes (default 1)")
    timing.add_argument("--out", default="bench.json", help="where to write the results (default bench.json)")
    timing.set_defaults(func=_bench)
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
