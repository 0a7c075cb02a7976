"""The ``descentlab`` command: parses arguments, calls the library, maps known errors to exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .i18n import LANGUAGES, Catalogue, check_language


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage block), like the library's errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _list(args: argparse.Namespace) -> int:
    from .optim import OPTIMIZERS
    from .problems import PROBLEMS, make_problem

    problems = {name: make_problem(name).summary for name in PROBLEMS}
    width = max(map(len, [*OPTIMIZERS, *problems]))
    print("optimizers (descentlab.optim):")
    for name, cls in OPTIMIZERS.items():
        print(f"  {name:<{width}}  {cls.summary}")
    print("problems (descentlab.problems):")
    for name, summary in problems.items():
        print(f"  {name:<{width}}  {summary}")
    return 0


def _assignments(pairs: Sequence[str], what: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as a dict; values are read as JSON (numbers, true, lists) or kept as text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must be KEY=VALUE; received {pair!r}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def _run(args: argparse.Namespace) -> int:
    import torch

    from ._files import check_writable, write_text_atomic
    from .train import Budget, Every, default_config, run
    from .train.checkpoint import columns_path

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be a positive integer; received {args.threads}")
        # This process is the command's own: setting torch's global thread count is ours to do.
        torch.set_num_threads(args.threads)

    options = _assignments(args.option, "--option")
    if args.data_dir is not None:
        options["data_dir"] = args.data_dir
    limits = {"steps": args.steps, "epochs": args.epochs, "samples": args.samples, "seconds": args.seconds}
    given = {k: v for k, v in limits.items() if v is not None}
    config = default_config(
        args.problem,
        optimizer=args.optimizer,
        lr=args.lr,
        hyperparameters=_assignments(args.hyper, "--hyper"),
        regime=args.regime,
        batch_size=args.batch_size,
        budget=Budget(**given) if given else None,
        problem_options=options,
        seed=args.seed,
        chunk_size=args.chunk_size,
        drop_last=args.drop_last,
        eval_every=Every.parse(args.eval_every) if args.eval_every else None,
        observers=tuple(args.observe),
        skip_nonfinite=args.skip_nonfinite,
    )
    out = Path(
        args.out
        or f"descentlab-out/runs/{config.problem}-{config.optimizer}-{config.regime}-seed{config.seed}.json"
    )
    # Checked before training, so a bad path costs nothing and leaves nothing behind.
    check_writable(out)
    if not args.checkpoint and (args.resume or args.checkpoint_every):
        given = "--resume" if args.resume else "--checkpoint-every"
        raise ValueError(f"{given} needs --checkpoint PATH: without it the run keeps no checkpoint")
    if args.checkpoint:
        check_writable(args.checkpoint)
        # the record written over the checkpoint (or its columns file) would lose the run's state
        kept = {Path(args.checkpoint).resolve(), columns_path(args.checkpoint).resolve()}
        if out.resolve() in kept:
            raise ValueError(
                f"--out and --checkpoint must be different files: the record would overwrite the "
                f"checkpoint; received --out={str(out)!r} and --checkpoint={args.checkpoint!r}"
            )
    record = run(
        config,
        checkpoint=args.checkpoint,
        checkpoint_every=Every.parse(args.checkpoint_every) if args.checkpoint_every else None,
        resume=args.resume,
        progress=_phases(args),
    )
    write_text_atomic(out, record.to_json() + "\n")
    print(record.summary())
    print(f"record      {out}")
    return 0


def _names(kind: str, text: str, table: dict) -> list:
    from ._registry import lookup

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"no {kind} given")
    found = [lookup(kind, n, table) for n in names]
    if len({id(f) for f in found}) < len(found):  # one entry under two names counts too
        raise ValueError(f"{kind}s may be named once each; received {','.join(names)!r}")
    return found


def _bench(args: argparse.Namespace) -> int:
    import torch

    from . import bench
    from ._files import check_writable, write_text_atomic

    if args.markdown is not None:
        keys = {"machine", "probe_gb_per_s", "measurements"}
        print(_render_json(args.markdown, bench.markdown, "a descentlab bench result", keys, "--out"))
        return 0
    if not 0 < args.scale <= 4:  # before the sizes are scaled (inf or nan would fail there)
        raise ValueError(f"--scale must be in (0, 4]; received {args.scale}")
    peers = bench.check_peers([n.strip() for n in (args.compare or "").split(",") if n.strip()])
    workloads = [w.scaled(args.scale) for w in _names("workload", args.workloads, bench.WORKLOADS)]
    algorithms = _names("optimizer", args.optimizers, bench.ALGORITHMS)
    lean = (args.lean_workloads or ",".join(bench.LEAN_WORKLOADS)).strip()
    lean_workloads = [] if lean == "none" else [w.name for w in _names("workload", lean, bench.WORKLOADS)]
    unmeasured = [name for name in lean_workloads if name not in {w.name for w in workloads}]
    if args.lean_workloads and unmeasured:
        raise ValueError(
            f"--lean-workloads must be among --workloads (lean rows are measured beside them); "
            f"received --lean-workloads {args.lean_workloads!r} and --workloads {args.workloads!r}"
        )
    if args.steps < 1 or args.rounds < 1:
        raise ValueError(f"--steps and --rounds must be at least 1; received {args.steps} and {args.rounds}")
    warmup = bench.WARMUP_S if args.warmup is None else args.warmup
    if not 0 <= warmup <= 60:
        raise ValueError(f"--warmup must be in [0, 60] seconds; received {warmup}")
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise ValueError(f"--device must be cpu or cuda (cuda:N); received {args.device!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda (cuda:N); received {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device or 'cuda'}: no CUDA device is available here")
    out = check_writable(args.out)
    with _phases(args) as phases:
        report = bench.run(
            workloads, algorithms, device=device, steps=args.steps, rounds=args.rounds,
            warmup_s=warmup, progress=phases, peers=peers, lean_workloads=lean_workloads,
            measured=lambda so_far: write_text_atomic(out, so_far.to_json()),
        )  # fmt: skip
    print(bench.table(report))
    print(f"results written to {out}")
    return 0


def _render_json(
    path: str, render: Callable[[dict[str, Any]], str], kind: str, keys: set[str], origin: str
) -> str:
    """``render`` of the JSON object in ``path`` (a --markdown file); ValueError naming the file if it is
    not ``kind`` (written by ``origin``): unreadable, not JSON, without ``keys``, or damaged.
    """
    where = f"--markdown: {path!r}"
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise ValueError(f"--markdown: cannot read {path!r} ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{where} is not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{where} is not JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict) or not keys <= set(data):
        raise ValueError(f"{where} is not {kind} (written by {origin})")
    try:
        return render(data)
    except KeyError as err:
        raise ValueError(f"{where} is not {kind}: it lacks {err}") from None
    except (TypeError, AttributeError, ValueError, IndexError, ArithmeticError) as err:
        raise ValueError(f"{where} is not {kind}: a field has a wrong type or value ({err})") from None


def _phases(args: argparse.Namespace):
    """The command's progress display on stderr (silent with --quiet)."""
    from ._progress import Phases

    return Phases(quiet=args.quiet)


def _add_quiet_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="show no progress on stderr (by default a bar on a terminal, else one line per phase)",
    )


def _add_executor_flags(parser: argparse.ArgumentParser) -> None:
    """--executor, --address and --workers, as sweep and compare take them."""
    parser.add_argument(
        "--executor", choices=("local", "ray"), default="local", help="a local process pool (default) or Ray"
    )
    parser.add_argument("--address", help="a Ray cluster to join (default: start or join a local Ray)")
    parser.add_argument(
        "--workers",
        type=int,
        help="worker processes (default: one per core; with Ray: a local instance's cores)",
    )


def _check_executor_flags(args: argparse.Namespace) -> None:
    """--workers, --executor and --address, as sweep and compare take them (before anything runs)."""
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive integer; received {args.workers}")
    if args.executor != "ray" and args.address is not None:
        raise ValueError("--address is for --executor ray")
    if args.address is not None and args.workers is not None:
        raise ValueError(
            "--workers sets the cores of a local Ray instance; a cluster at --address has its own"
        )


def _executor(args: argparse.Namespace):
    """The executor the checked flags ask for: a local process pool, or Ray (local, or at --address)."""
    from .lab import LocalExecutor, RayExecutor

    if args.executor == "ray":
        try:
            return RayExecutor(args.address, **({"num_cpus": args.workers} if args.workers else {}))
        except ImportError as err:
            raise ValueError(str(err)) from None
    return LocalExecutor(args.workers)


def _sweep(args: argparse.Namespace) -> int:
    import time

    from ._files import check_writable
    from .lab import Progress, Store, load_spec, run_sweep, summary

    # Everything is checked before anything runs or is written: the spec (every
    # configuration in it), the flags, the store (an incompatible one is refused
    # read-only, so it is not modified), and the executor.
    spec = load_spec(args.spec)
    configs = spec.configs()
    experiment = args.experiment if args.experiment is not None else spec.name
    if not experiment:
        raise ValueError("--experiment must be a non-empty name")
    _check_executor_flags(args)
    store_path = Path(args.store)
    if store_path.exists() and not store_path.is_dir():
        Store(store_path).close()
    else:
        check_writable(store_path)

    executor = _executor(args)
    start = time.monotonic()
    final: Progress | None = None  # run_sweep reports before running anything

    def show(progress: Progress) -> None:
        nonlocal final
        final = progress
        phases.update("sweep", progress.done, progress.total, progress.describe())

    with executor, Store(store_path) as store, _phases(args) as phases:
        runs = run_sweep(
            store, experiment, configs, executor=executor, progress=show, retry_failed=args.retry_failed
        )
    assert final is not None
    print(summary(runs, final, seconds=time.monotonic() - start))
    print(f"store       {store_path} (experiment {experiment!r})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .lab.compare import DEFAULT_OUT, compare, prepare
    from .lab.methods import load_methods, parse_method
    from .lab.suite import get_suite

    # Everything is checked before anything runs or is written: names, flags, the
    # user's methods (imported and built once), the output directory and a store in it.
    words = Catalogue("descentlab.lab", args.lang)
    if args.quick and args.suite is not None:
        raise ValueError("--quick is --suite quick; give one of them")
    suite = get_suite("quick" if args.quick else (args.suite or "default"))
    user = [parse_method(text) for text in args.method]
    if args.methods_file:
        user += load_methods(args.methods_file)
    names = [m.name for m in user]
    if len(set(names)) != len(names):
        raise ValueError(f"a method name is given twice: {names}")
    suite = suite.restricted(_csv(args.claims), _csv(args.problems)).with_methods(tuple(user))
    _check_executor_flags(args)
    out = Path(args.out) if args.out else DEFAULT_OUT
    prepare(out)
    executor = _executor(args)
    with executor, _phases(args) as phases:
        phases.note(f"descentlab compare: suite {suite.name} ({suite.summary}) into {out}")
        path, findings = compare(out, suite, executor=executor, progress=phases, lang=args.lang)
    _print_verdicts(findings, path, words)
    return 0


def _report(args: argparse.Namespace) -> int:
    from .lab.compare import render

    if args.markdown is not None:
        if args.directory is not None:
            raise ValueError(
                f"give DIR or --markdown FILE, not both; received {args.directory!r} and --markdown"
            )
        from .lab.findings import markdown

        lang = check_language(args.lang)
        keys = {"suite", "claims"}
        text = _render_json(
            args.markdown, lambda data: markdown(data, lang), "a findings.json", keys, "descentlab compare"
        )
        print(text, end="")
        return 0
    if args.directory is None:
        raise ValueError("give DIR (a descentlab compare output directory), or --markdown FILE")
    words = Catalogue("descentlab.lab", args.lang)
    path, findings = render(args.directory, lang=args.lang)
    _print_verdicts(findings, path, words)
    return 0


def _playground(args: argparse.Namespace) -> int:
    from .playground import MissingExtraError, serve

    try:
        serve(args.host, args.port, open_browser=not args.no_browser)
    except MissingExtraError as err:
        raise ValueError(str(err)) from None
    return 0


def _print_verdicts(findings, path: Path, words: Catalogue) -> None:
    """The verdicts, the findings file and the report, one line each, in the catalogue's language."""
    failed = [c for c in findings.calibration if not c.get("pass")]
    if findings.calibration:
        passed, total = len(findings.calibration) - len(failed), len(findings.calibration)
        note = " " + words("print.failed", ids=", ".join(c["id"] for c in failed)) if failed else ""
        print(words("print.calibration", passed=passed, total=total) + note)
    for claim in findings.claims:
        robust = words("print.robust" if claim.robust else "print.not_robust")
        verdict = words(f"verdict.{claim.verdict}")
        print(f"{claim.id:<4}{_pad(verdict, 14)}{_pad(robust, 12)}{words.translate(claim.statement)}")
        for sub in claim.subclaims:
            print(f"    {sub.id:<16}{_pad(words(f'verdict.{sub.verdict}'), 14)}{words('print.effect')} "
                  f"{sub.effect:.3g} [{sub.low:.3g}, {sub.high:.3g}]")  # fmt: skip
    print(f"{_pad(words('print.findings'), 12)}{path.parent / 'findings.json'}")
    print(f"{_pad(words('print.report'), 12)}{path}")


def _pad(text: str, width: int) -> str:
    """``text`` padded to ``width`` terminal columns (a Chinese character takes two)."""
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(1, width - columns)


def _add_lang_flag(parser: argparse.ArgumentParser) -> None:
    # Checked by check_language (not argparse's choices), so that a wrong value is
    # the same one-line error, naming the value, as every other user error.
    parser.add_argument(
        "--lang",
        default="en",
        help=f"the language of the report and the printed verdicts: {', '.join(LANGUAGES)} (default en); "
        "findings.json is the same in every language",
    )


def _csv(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError(f"expected comma-separated names; received {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="descentlab",
        description="Gradient descent for deep learning, done right and shown plainly.",
    )
    parser.add_argument("--version", action="version", version=f"descentlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="list the optimizers and the problems, one line each")
    listing.set_defaults(func=_list)
    timing = commands.add_parser(
        "bench",
        help="time every optimizer's step on each implementation, against torch.optim",
        description="Time step() for descentlab's fast and per-tensor paths and torch.optim's for-loop, "
        "foreach and fused paths, in one process, with a memory-bandwidth probe; and descentlab's fast "
        "path with bfloat16 and 8-bit state, against a probe that moves the same bytes.",
    )
    timing.add_argument(
        "--workloads",
        default="transformer,many-small,transformer-bf16",
        help="comma-separated (default: all three)",
    )
    timing.add_argument("--optimizers", default="sgd,adagrad,rmsprop,adam,adamw", help="comma-separated")
    timing.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    timing.add_argument("--steps", type=int, default=10, help="timed steps per round (default 10)")
    timing.add_argument(
        "--rounds", type=int, default=3, help="rounds; implementations take turns (default 3)"
    )
    timing.add_argument(
        "--warmup",
        type=float,
        metavar="SECONDS",
        help="untimed stepping before each implementation's timed steps in a round, at least one step "
        "(default 0.25: a core that sat idle runs the next parallel steps slowly for a while)",
    )
    timing.add_argument("--scale", type=float, default=1.0, help="scale the workloads' sizes (default 1)")
    timing.add_argument("--out", default="bench.json", help="where to write the results (default bench.json)")
    timing.add_argument(
        "--compare",
        default="",
        help="peers to measure alongside, comma-separated, each where installed, for adam and adamw: "
        "deepspeed (DeepSpeedCPUAdam, on the CPU), bitsandbytes (Adam8bit, AdamW8bit), torchao "
        "(torchao.optim's Adam8bit, AdamW8bit); pip install 'descentlab[bench]' installs the last two",
    )
    timing.add_argument(
        "--lean-workloads",
        metavar="WORKLOADS",
        help="where to measure descentlab's fast path with bfloat16 and 8-bit state too (rows 'descentlab "
        "fast bf16-state' and '... 8-bit-state', each with its own streaming probe), comma-separated, "
        "or none (default: transformer, where the targets are stated)",
    )
    timing.add_argument(
        "--markdown",
        metavar="JSON",
        help="measure nothing: print the results in JSON (a file --out wrote) as the benchmarks page's "
        "Markdown tables",
    )
    _add_quiet_flag(timing)
    timing.set_defaults(func=_bench)

    runner = commands.add_parser(
        "run",
        help="train on one problem with one optimizer and write the run's record as JSON",
        description="Train on a problem; options not given come from the problem's documented setting "
        "(descentlab list shows the problems).",
    )
    runner.set_defaults(func=_run)
    runner.add_argument("--problem", required=True, help="a problem name (descentlab list)")
    runner.add_argument("--optimizer", help="an optimizer name (default: the problem's documented one)")
    runner.add_argument("--lr", type=float, help="learning rate")
    runner.add_argument(
        "--hyper",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an optimizer argument, e.g. momentum=0.9 or betas=[0.9,0.99]",
    )
    runner.add_argument("--regime", choices=("full-batch", "mini-batch", "online"))
    runner.add_argument("--batch-size", type=int, help="mini-batch size")
    runner.add_argument(
        "--chunk-size", type=int, default=1024, help="full-batch chunk (bounds memory; default 1024)"
    )
    runner.add_argument("--drop-last", action="store_true", help="skip each epoch's last, smaller mini-batch")
    budget = runner.add_argument_group("budget (the first reached stops the run; default: the problem's)")
    budget.add_argument("--steps", type=int, help="updates")
    budget.add_argument("--epochs", type=int, help="passes over the data")
    budget.add_argument("--samples", type=int, help="samples used by the updates")
    budget.add_argument("--seconds", type=float, help="training time")
    runner.add_argument("--seed", type=int, default=0, help="initialisation and data order (default 0)")
    runner.add_argument(
        "--threads",
        type=int,
        help="torch's intra-op threads for this process (default: torch's); 1 is fastest for the small "
        "problems when other processes share the cores",
    )
    runner.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a problem option, e.g. n_samples=2000",
    )
    runner.add_argument(
        "--data-dir", help="directory holding a local data set (MNIST, Fashion-MNIST, CIFAR-10)"
    )
    runner.add_argument(
        "--eval-every", metavar="N[UNIT]", help="held-out evaluation interval, e.g. 100 (steps) or 1epochs"
    )
    runner.add_argument(
        "--observe",
        action="append",
        default=[],
        metavar="NAME",
        help="record an observer: path, effective-lr, lean-state",
    )
    runner.add_argument(
        "--skip-nonfinite", action="store_true", help="skip steps whose gradient is not finite"
    )
    runner.add_argument("--out", help="the record's JSON file (default descentlab-out/runs/...)")
    runner.add_argument("--checkpoint", help="checkpoint file (written atomically)")
    runner.add_argument(
        "--checkpoint-every", metavar="N[UNIT]", help="checkpoint interval (default: every epoch)"
    )
    runner.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    _add_quiet_flag(runner)

    sweeper = commands.add_parser(
        "sweep",
        help="run every configuration of a search space, each stored as it finishes; rerun to resume",
        description="Run the runs a spec file (TOML or JSON) declares, on a local process pool or Ray, "
        "committing each to an SQLite store as it finishes. Runs already in the store under the same "
        "experiment are not run again, so the same command resumes a sweep that was stopped or killed.",
    )
    sweeper.set_defaults(func=_sweep)
    sweeper.add_argument("spec", metavar="SPEC", help="the sweep's spec file (.toml, or .json)")
    sweeper.add_argument(
        "--store",
        default="descentlab-out/lab.sqlite",
        help="the SQLite store (default descentlab-out/lab.sqlite)",
    )
    sweeper.add_argument(
        "--experiment",
        help="the name the runs are stored under (default: the spec's name, else its file name)",
    )
    _add_executor_flags(sweeper)
    sweeper.add_argument(
        "--retry-failed", action="store_true", help="run again the runs stored as failed (default: keep them)"
    )
    _add_quiet_flag(sweeper)

    comparer = commands.add_parser(
        "compare",
        help="the main job: every method on the problems, tuned fairly; a report with verdicts on the usual "
        "claims",
        description="Run every method on the suite's problems (learning rate tuned on a log grid, the best "
        "rerun with several seeds), store every run in an SQLite store, and write a self-contained HTML "
        "report with its figures and the verdicts on the usual claims, computed from the runs. Runs already "
        "stored in the output directory are not run again.",
    )
    comparer.set_defaults(func=_compare)
    comparer.add_argument("--out", help="output directory (default descentlab-out/compare)")
    comparer.add_argument(
        "--quick",
        action="store_true",
        help="the quick suite (two to three minutes on 2 cores; the default suite takes about 20)",
    )
    comparer.add_argument(
        "--suite", help="a suite by name: default, quick, lean (C8 with long runs) or tiny (for tests)"
    )
    _add_lang_flag(comparer)
    comparer.add_argument("--claims", metavar="C1,C3", help="only these claims")
    comparer.add_argument(
        "--problems", metavar="X,Y", help="only these problems and 2-D landscapes of the suite"
    )
    comparer.add_argument(
        "--method",
        action="append",
        default=[],
        metavar="NAME=OPTIMIZER;role=ROLE[;KEY=VALUE]",
        help="your own method, judged by the same protocol in the roles given: a registry optimizer or a "
        "torch.optim.Optimizer subclass as module:Class, with fixed hyperparameters, e.g. "
        "'mine=mypkg.optim:Mine;role=adam;betas=[0.9,0.99]' (repeatable)",
    )
    comparer.add_argument(
        "--methods-file", metavar="FILE", help="your own methods from a TOML file (one table per method)"
    )
    _add_executor_flags(comparer)
    _add_quiet_flag(comparer)

    reporter = commands.add_parser(
        "report",
        help="re-render a comparison's report from its store, without training",
        description="Rebuild report.html and its figures in DIR from the store and the suite kept there.",
    )
    reporter.set_defaults(func=_report)
    reporter.add_argument("directory", metavar="DIR", nargs="?", help="a descentlab compare output directory")
    reporter.add_argument(
        "--markdown",
        metavar="FINDINGS",
        help="render nothing: print a findings.json as the Markdown tables of the docs' findings page",
    )
    _add_lang_flag(reporter)

    playground = commands.add_parser(
        "playground",
        help="a local page to watch the optimizers move, update by update (needs descentlab[playground])",
        description="Serve the playground on this machine and open it in the browser: pick a surface or "
        "type a formula, click a start, and watch descentlab's optimizers descend, with each update's "
        "terms. Needs the optional extra: pip install 'descentlab[playground]'.",
    )
    playground.set_defaults(func=_playground)
    playground.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    playground.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    playground.add_argument("--no-browser", action="store_true", help="print the address; do not open it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for a user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (`descentlab list | head`): nothing more to write, and no error.
        # Python would complain again when it flushes stdout at exit: point it at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, LookupError, OSError) as err:
        # Known user errors: one line, no traceback.
        message = " ".join(str(err).split())
        print(f"descentlab {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"descentlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
