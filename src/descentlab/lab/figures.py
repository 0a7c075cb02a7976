"""The report's figures, drawn from the evidence with matplotlib's object API (no pyplot, no global state).

Each function draws one figure from an :class:`~descentlab.lab.evidence.Evidence`
and writes it (PNG, or GIF for the animation) atomically to the path given;
it returns False, writing nothing, when there is nothing to draw. Figures are
built with ``matplotlib.figure.Figure``, which renders with Agg without
touching pyplot's global backend or figure list, and written without
timestamps, so the same evidence gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .. import _files
from ..problems import make_problem
from . import analysis
from .claims import rare_feature_errors, sensitivity
from .evidence import Evidence
from .methods import METHODS
from .mistakes import MISTAKES

DPI = 100
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: One colour per method and mistaken rule, the same in every figure.
COLOURS = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate([*METHODS, *MISTAKES])}
_PNG_METADATA = {"Software": None}  # no version string: the bytes depend on the data only


def _figure(width: float = 6.4, height: float = 4.0, ncols: int = 1, nrows: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # this figure's own Agg canvas; pyplot's backend is left alone
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _short_log_labels(fig) -> None:
    """Log axes labelled as plain numbers; minor ticks (at 2 and 5 only) only on axes
    spanning under two decades. matplotlib's default labels every minor tick in powers
    of ten, which overlap on narrow panels."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    def minor(value: float, _pos: int) -> str:
        mantissa = round(value / 10 ** math.floor(math.log10(value)), 6) if value > 0 else 0
        return f"{value:g}" if mantissa in (2, 5) else ""

    for ax in fig.axes:
        for axis, scale, limits in (
            (ax.xaxis, ax.get_xscale(), ax.get_xlim()),
            (ax.yaxis, ax.get_yscale(), ax.get_ylim()),
        ):
            if scale != "log":
                continue
            low, high = sorted(limits)
            axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
            narrow = low > 0 and math.log10(high / low) < 2
            axis.set_minor_formatter(FuncFormatter(minor) if narrow else NullFormatter())


def _save(fig, path: Path) -> bool:
    _short_log_labels(fig)
    with _files.atomic_writer(path) as file:
        fig.savefig(file, format="png", metadata=_PNG_METADATA)
    return True


def _positive(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and bool(np.all(finite > 0))


# -- 2-D paths ---------------------------------------------------------------------------------


def _surface(evidence: Evidence, problem: str):
    spec = evidence.suite.spec(problem)
    built = make_problem(spec.problem, **spec.options)
    return built if hasattr(built, "function") else None


def _seed0_path(evidence: Evidence, method: str, problem: str) -> np.ndarray | None:
    records = [r for r in evidence.records(method, problem) if "path" in r.observations]
    # Seed 0 starts at the standard start: the same point for every method.
    if not records or records[0].config is None or records[0].config.seed != 0:
        return None
    _, values = analysis.observed(records[0], "path")
    return values[:, :2] if len(values) else None


def _contour(ax, surface) -> None:
    (x0, x1), (y0, y1) = surface.bounds
    x, y = np.meshgrid(np.linspace(x0, x1, 240), np.linspace(y0, y1, 240))
    z = surface.function(x, y)
    # Log-spaced levels above the lowest value: valleys and plateaus both show.
    floor = float(np.min(z))
    levels = floor + np.geomspace(1e-3, max(float(np.max(z)) - floor, 1e-2), 18)
    ax.contour(x, y, z, levels=levels, colors="#b0b0b0", linewidths=0.6)
    for mx, my in surface.minima:
        ax.plot(mx, my, marker="*", color="black", markersize=11, linestyle="none")
    for sx, sy in surface.saddles:
        ax.plot(sx, sy, marker="x", color="black", markersize=8, linestyle="none")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _clip(points: np.ndarray, surface) -> np.ndarray:
    (x0, x1), (y0, y1) = surface.bounds
    pad = 0.25 * max(x1 - x0, y1 - y0)
    finite = np.all(np.isfinite(points), axis=1)
    inside = finite & (points[:, 0] > x0 - pad) & (points[:, 0] < x1 + pad)
    inside &= (points[:, 1] > y0 - pad) & (points[:, 1] < y1 + pad)
    # A path that leaves the plot for good (divergence) is drawn up to where it leaves.
    stop = int(np.argmin(inside)) if not inside.all() else len(points)
    return points[: max(stop, 1)]


def paths(evidence: Evidence, problem: str, path: Path, methods: Sequence[str] | None = None) -> bool:
    """Every method's seed-0 path from the same start, on the contour plot of the surface."""
    surface = _surface(evidence, problem)
    if surface is None:
        return False
    fig, axes = _figure(6.4, 4.8)
    ax = axes[0, 0]
    _contour(ax, surface)
    drawn = False
    for method in methods or evidence.methods_on(problem):
        points = _seed0_path(evidence, method, problem)
        if points is None:
            continue
        points = _clip(points, surface)
        ax.plot(points[:, 0], points[:, 1], color=COLOURS[method], linewidth=1.2, label=method, alpha=0.9)
        drawn = True
    if not drawn:
        return False
    start = surface.start_point
    ax.plot(*start, marker="o", color="black", markersize=5, linestyle="none", label="start")
    ax.set_title(f"{problem}: paths from the same start at each method's tuned lr (seed 0)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def paths_animation(evidence: Evidence, problem: str, path: Path, frames: int = 40) -> bool:
    """The same paths, drawn update by update, as a looping GIF.

    The contour plot is drawn once and the paths are blitted onto a copy of
    it for each frame, which Pillow then writes as the GIF's frames.
    """
    from PIL import Image

    surface = _surface(evidence, problem)
    if surface is None:
        return False
    found = {m: _seed0_path(evidence, m, problem) for m in evidence.methods_on(problem)}
    found = {m: _clip(p, surface) for m, p in found.items() if p is not None}
    if not found:
        return False
    longest = max(len(p) for p in found.values())
    fig, axes = _figure(4.8, 3.6)
    fig.set_dpi(70)
    ax = axes[0, 0]
    _contour(ax, surface)
    lines = {m: ax.plot([], [], color=COLOURS[m], linewidth=1.2, label=m, animated=True)[0] for m in found}
    heads = {m: ax.plot([], [], marker="o", color=COLOURS[m], markersize=4, animated=True)[0] for m in found}
    ax.legend(handles=[ax.plot([], [], color=COLOURS[m], label=m)[0] for m in found], fontsize=6, loc="best")
    title = ax.text(0.02, 0.98, "", transform=ax.transAxes, fontsize=8, va="top", animated=True)
    canvas = fig.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    # Frames at updates evenly spaced in log scale: the first moves are where the methods differ most.
    marks = sorted({round(k) for k in np.geomspace(1, longest, frames)})
    images = []
    for k in marks:
        canvas.restore_region(background)
        for method, points in found.items():
            shown = points[: min(k, len(points))]
            lines[method].set_data(shown[:, 0], shown[:, 1])
            heads[method].set_data(shown[-1:, 0], shown[-1:, 1])
            ax.draw_artist(lines[method])
            ax.draw_artist(heads[method])
        title.set_text(f"after {k - 1} updates")
        ax.draw_artist(title)
        images.append(
            Image.frombuffer("RGBA", canvas.get_width_height(), bytes(canvas.buffer_rgba())).convert("RGB")
        )
    # One palette for every frame (the last shows every colour), so Pillow stores only what changed.
    palette = images[-1].quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    frames_p = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    with _files.atomic_writer(path) as file:
        frames_p[0].save(
            file,
            format="GIF",
            save_all=True,
            append_images=frames_p[1:],
            duration=120,
            loop=0,
            optimize=False,
        )
    return True


# -- curves -----------------------------------------------------------------------------------------

_AXIS_LABELS = {"step": "updates", "samples": "samples seen", "seconds": "training seconds"}
# Counts span decades between regimes (a full-batch update is a pass over the data): log scale.
_LOG_AXES = ("step", "samples")


def _band(ax, records, axis: str, colour: str, label: str) -> bool:
    x, mid, low, high = analysis.curve_band(records, axis, 0.0, 1.0)
    if axis in _LOG_AXES:  # the initial evaluation (x = 0) has no place on a log axis
        keep = x > 0
        x, mid, low, high = x[keep], mid[keep], low[keep], high[keep]
    if len(x) == 0:
        return False
    ax.plot(x, mid, color=colour, linewidth=1.2, label=label)
    ax.fill_between(x, low, high, color=colour, alpha=0.18, linewidth=0)
    return True


def curves(evidence: Evidence, problem: str, path: Path, methods: Sequence[str] | None = None) -> bool:
    """Held-out loss against updates, samples and training seconds: median and range across seeds."""
    fig, axes = _figure(11.0, 3.6, ncols=3)
    drawn = False
    values = []
    for method in methods or evidence.methods_on(problem):
        records = evidence.records(method, problem)
        for i, axis in enumerate(("step", "samples", "seconds")):
            drawn |= _band(axes[0, i], records, axis, COLOURS[method], method)
        values += [v for r in records for v in r.held_out.loss]
    if not drawn:
        return False
    target = evidence.target(problem)
    log_y = _positive(np.asarray(values, dtype=float))
    for i, axis in enumerate(("step", "samples", "seconds")):
        ax = axes[0, i]
        ax.set_xlabel(_AXIS_LABELS[axis])
        ax.set_xscale("log" if axis in _LOG_AXES else "linear")
        if log_y:
            ax.set_yscale("log")
        if target is not None:
            ax.axhline(target, color="black", linestyle="--", linewidth=0.8)
    axes[0, 0].set_ylabel("held-out loss")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(
        f"{problem}: median over seeds at each method's tuned lr, band from min to max; dashed: target",
        fontsize=9,
    )
    _limit_y(axes[0], values, log_y)
    return _save(fig, path)


def _limit_y(axes, values: Sequence[float], log_y: bool) -> None:
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if not len(finite):
        return
    low, high = float(np.min(finite)), float(np.quantile(finite, 0.98))
    high = min(high, 1e300)  # room for the padding below without overflowing to infinity
    if log_y:
        low, high = low / 1.3, high * 1.3
    else:
        pad = 0.05 * (high - low or 1.0)
        low, high = low - pad, high + pad
    for ax in axes:
        ax.set_ylim(low, high)


# -- learning-rate sensitivity ----------------------------------------------------------------------


def lr_sensitivity(evidence: Evidence, problem: str, path: Path) -> bool:
    """Final held-out loss against the learning rate, for each tuned method (seed 0; x: diverged)."""
    fig, axes = _figure(6.4, 4.0)
    ax = axes[0, 0]
    start = evidence.start(problem)
    finite: list[float] = []
    rows = []
    for method in evidence.methods_on(problem):
        if not METHODS[method].tuned:
            continue
        grid = evidence.grid(method, problem)
        if not any(r is not None for _, r in grid):
            continue
        rows.append((method, [(lr, analysis.final_loss(r), r is not None) for lr, r in grid]))
        finite += [loss for _, loss, _ in rows[-1][1] if math.isfinite(loss)]
    if not rows:
        return False
    top = max([*finite, *([start] if start is not None else [])], default=1.0)
    if start is not None and math.isfinite(start):
        # A run that blew up to a huge but finite loss would stretch the axis over hundreds of
        # decades (and overflow matplotlib's tick arithmetic): such points are drawn on the ceiling.
        top = min(top, 100 * start if start > 0 else start + 100 * (abs(start) + 1))
    log_y = _positive(np.asarray([*finite, top]))
    ceiling = top * 1.5 if log_y else top + 0.1 * (abs(top) + 1)
    for method, points in rows:
        xs = [lr for lr, loss, ran in points if ran and math.isfinite(loss)]
        ys = [min(loss, ceiling) for lr, loss, ran in points if ran and math.isfinite(loss)]
        ax.plot(xs, ys, marker="o", markersize=3, color=COLOURS[method], label=method, linewidth=1)
        bad = [lr for lr, loss, ran in points if ran and not math.isfinite(loss)]
        ax.plot(bad, [ceiling] * len(bad), marker="x", color=COLOURS[method], linestyle="none")
    if start is not None:
        ax.axhline(start, color="grey", linestyle=":", linewidth=0.8, label="start")
    target = evidence.target(problem)
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", linewidth=0.8, label="target")
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final held-out loss (seed 0)")
    ax.set_title(
        f"{problem}: learning-rate sensitivity (x at the top: diverged; points on it: off the scale)",
        fontsize=9,
    )
    ax.legend(fontsize=7, ncols=2)
    return _save(fig, path)


# -- effective learning rate ------------------------------------------------------------------------


def effective_lr(evidence: Evidence, problem: str, path: Path, methods: Sequence[str] | None = None) -> bool:
    """The distribution across parameters of the per-coordinate effective learning rate over time.

    Median (line), 10% to 90% (dark band) and minimum to maximum (light band)
    across coordinates, for seed 0 of each adaptive method.
    """
    fig, axes = _figure(6.4, 4.0)
    ax = axes[0, 0]
    drawn = False
    chosen = methods or [m for m in evidence.methods_on(problem) if METHODS[m].adaptive]
    for method in chosen:
        records = evidence.records(method, problem)
        if not records:
            continue
        steps, values = analysis.observed(records[0], "effective-lr")
        keep = steps >= 1  # before the first update the state is empty
        steps, values = steps[keep], values[keep]
        if not len(steps):
            continue
        colour = COLOURS[method]
        ax.plot(steps, values[:, 2], color=colour, label=method, linewidth=1.2)
        ax.fill_between(steps, values[:, 1], values[:, 3], color=colour, alpha=0.25, linewidth=0)
        ax.fill_between(steps, values[:, 0], values[:, 4], color=colour, alpha=0.08, linewidth=0)
        drawn = True
    if not drawn:
        return False
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("updates")
    ax.set_ylabel("effective learning rate")
    ax.set_title(f"{problem}: effective per-coordinate lr (median, 10-90%, min-max; seed 0)", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


# -- performance profiles ---------------------------------------------------------------------------

TAUS = tuple(float(t) for t in np.geomspace(1, 100, 200))


def profile_costs(evidence: Evidence, axis: str) -> dict[str, dict[str, float]]:
    """Median cost (on ``axis``) to each problem's target per method, on the problems every method ran."""
    costs = {}
    for spec in evidence.suite.problems:
        problem = spec.problem
        if set(evidence.methods_on(problem)) != set(evidence.suite.methods):
            continue
        target = evidence.target(problem)
        if target is None:
            continue
        costs[problem] = {
            m: analysis.time_to(evidence.records(m, problem), target, axis)
            if evidence.records(m, problem)
            else math.inf
            for m in evidence.suite.methods
        }
    return costs


def profiles(evidence: Evidence, path: Path) -> bool:
    """Performance profiles: the share of problems on which a method is within tau of the best cost."""
    fig, axes = _figure(11.0, 4.0, ncols=2)
    drawn = False
    for ax, axis in zip(axes[0], ("seconds", "samples"), strict=True):
        costs = profile_costs(evidence, axis)
        if not costs:
            continue
        shares = analysis.performance_profile(costs, TAUS)
        for method in evidence.suite.methods:
            ax.step(TAUS, shares[method], where="post", color=COLOURS[method], label=method, linewidth=1.2)
        drawn = True
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"tau (ratio to the best {_AXIS_LABELS[axis]} to the target)")
        ax.set_ylabel("share of problems")
        ax.set_title(f"{_AXIS_LABELS[axis]} to the documented target, {len(costs)} problems", fontsize=9)
    if not drawn:
        return False
    axes[0, 0].legend(fontsize=7)
    return _save(fig, path)


# -- claim figures ----------------------------------------------------------------------------------


def small_multiples(
    evidence: Evidence,
    problems: Sequence[str],
    path: Path,
    draw: Callable[[object, str], bool],
    title: str,
    width: float = 3.6,
) -> bool:
    """One panel per problem, each drawn by ``draw(ax, problem)``."""
    if not problems:
        return False
    fig, axes = _figure(width * len(problems), 3.4, ncols=len(problems))
    drawn = [draw(ax, problem) for ax, problem in zip(axes[0], problems, strict=True)]
    if not any(drawn):
        return False
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _loss_panel(evidence: Evidence, methods: Sequence[str], axis: str):
    def draw(ax, problem: str) -> bool:
        drawn = False
        values: list[float] = []
        for method in methods:
            records = evidence.records(method, problem)
            drawn |= _band(ax, records, axis, COLOURS[method], method)
            values += [v for r in records for v in r.held_out.loss]
        if not drawn:
            return False
        target = evidence.target(problem)
        if target is not None:
            ax.axhline(target, color="black", linestyle="--", linewidth=0.8)
        log_y = _positive(np.asarray(values, dtype=float))
        if log_y:
            ax.set_yscale("log")
        _limit_y([ax], values, log_y)
        if axis in _LOG_AXES:
            ax.set_xscale("log")
        ax.set_xlabel(_AXIS_LABELS[axis])
        ax.set_title(problem, fontsize=9)
        ax.legend(fontsize=7)
        return True

    return draw


def regimes(evidence: Evidence, path: Path) -> bool:
    """C1: full batch against mini-batches, held-out loss against training seconds."""
    return small_multiples(
        evidence,
        evidence.suite.claim_problems.get("C1", ()),
        path,
        _loss_panel(evidence, ("gd", "sgd"), "seconds"),
        "C1: held-out loss against training seconds, gd and sgd at their tuned lr (median, min-max)",
    )


def prequential(evidence: Evidence, path: Path) -> bool:
    """C2: online SGD's prequential loss, per sample (light) and as a moving average."""

    def draw(ax, problem: str) -> bool:
        records = [r for r in evidence.records("online-sgd", problem) if r.train_loss]
        if not records:
            return False
        for i, record in enumerate(records):
            losses = np.asarray(record.train_loss, dtype=float)
            k = max(1, len(losses) // 20)
            smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
            ax.plot(
                np.arange(k, len(losses) + 1),
                smooth,
                color=COLOURS["online-sgd"],
                alpha=0.5 + 0.5 * (i == 0),
                linewidth=1,
                label="online-sgd (each seed)" if i == 0 else None,
            )
        ax.set_xlabel("samples seen (each new)")
        ax.set_ylabel("test-then-train loss, moving mean")
        ax.set_title(problem, fontsize=9)
        ax.legend(fontsize=7)
        return True

    return small_multiples(
        evidence,
        evidence.suite.claim_problems.get("C2", ()),
        path,
        draw,
        "C2: online SGD's prequential loss over one pass (moving mean over 5% of the stream)",
    )


def momentum_updates(evidence: Evidence, path: Path) -> bool:
    """C3: loss against updates for plain descent, momentum and matched momentum on the saddle and trap."""
    return small_multiples(
        evidence,
        evidence.suite.claim_problems.get("C3", ()),
        path,
        _loss_panel(evidence, ("sgd", "momentum", "momentum-matched"), "step"),
        "C3: loss against updates (median, min-max over jittered starts); dashed: target",
    )


def kicks(evidence: Evidence, path: Path) -> bool:
    """C4: the distribution of one update's move in the second half of the paths."""

    def draw(ax, problem: str) -> bool:
        drawn = False
        for method in ("sgd", "momentum", "momentum-matched"):
            moves = [
                analysis.step_lengths(analysis.path_tail(r))
                for r in evidence.records(method, problem)
                if "path" in r.observations and not r.diverged
            ]
            moves = [m for m in moves if len(m)]
            if not moves:
                continue
            values = np.sort(np.concatenate(moves))
            values = values[values > 0]
            if not len(values):
                continue
            share = 1 - np.arange(len(values)) / len(values)
            ax.plot(values, share, color=COLOURS[method], label=method, linewidth=1.2)
            drawn = True
        if not drawn:
            return False
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("length of one update's move")
        ax.set_ylabel("share of moves at least this long")
        ax.set_title(problem, fontsize=9)
        ax.legend(fontsize=7)
        return True

    return small_multiples(
        evidence,
        evidence.suite.claim_problems.get("C4", ()),
        path,
        draw,
        "C4: how far single updates move in the second half of the path (all seeds); the tail is the kicks",
        width=4.4,
    )


def rare_features(evidence: Evidence, path: Path) -> bool:
    """C5: rare- and common-feature weight errors against samples seen, AdaGrad and SGD."""
    fig, axes = _figure(9.0, 3.6, ncols=2)
    drawn = False
    for method in ("adagrad", "sgd"):
        errors = rare_feature_errors(evidence, method)
        if not errors:
            continue
        n = min(len(e[0]) for e in errors)
        samples = errors[0][0][:n]
        for column, ax in ((1, axes[0, 0]), (2, axes[0, 1])):
            values = np.array([e[column][:n] for e in errors])
            ax.plot(samples, np.median(values, axis=0), color=COLOURS[method], label=method)
            ax.fill_between(samples, values.min(axis=0), values.max(axis=0), color=COLOURS[method], alpha=0.2)
        drawn = True
    if not drawn:
        return False
    for ax, which in ((axes[0, 0], "rare"), (axes[0, 1], "common")):
        ax.set_xlabel("samples seen")
        ax.set_ylabel(f"relative error of {which}-feature weights")
        ax.set_title(f"{which} features", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"C5 on {evidence.suite.rare_features}: median over seeds, band min-max", fontsize=9)
    return _save(fig, path)


def vanishing_lr(evidence: Evidence, path: Path) -> bool:
    """C6: AdaGrad's and RMSProp's median effective learning rate against updates, every seed."""

    def draw(ax, problem: str) -> bool:
        drawn = False
        for method in ("adagrad", "rmsprop"):
            for i, record in enumerate(evidence.records(method, problem)):
                steps, values = analysis.observed(record, "effective-lr")
                keep = steps >= 1
                if not keep.any():
                    continue
                ax.plot(
                    steps[keep],
                    values[keep, 2],
                    color=COLOURS[method],
                    alpha=0.6,
                    label=method if i == 0 else None,
                    linewidth=1,
                )
                drawn = True
        if not drawn:
            return False
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("updates")
        ax.set_ylabel("median effective lr")
        ax.set_title(problem, fontsize=9)
        ax.legend(fontsize=7)
        return True

    return small_multiples(
        evidence,
        evidence.suite.claim_problems.get("C6", ()),
        path,
        draw,
        "C6: median effective per-coordinate learning rate, each seed",
    )


def sensitivity_counts(evidence: Evidence, path: Path, keep: float) -> bool:
    """C7: how many grid points keep ``keep`` of each method's best improvement, per problem."""
    problems = evidence.suite.claim_problems.get("C7", ())
    table = {p: {m: len(v) for m, v in sensitivity(evidence, p, keep).items()} for p in problems}
    table = {p: row for p, row in table.items() if row}
    if not table:
        return False
    methods = [m for m in evidence.suite.methods if any(m in row for row in table.values())]
    fig, axes = _figure(max(6.4, 1.2 * len(table) + 2), 3.8)
    ax = axes[0, 0]
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        xs = np.arange(len(table)) + i * width
        ax.bar(xs, [row.get(method, 0) for row in table.values()], width, color=COLOURS[method], label=method)
    ax.set_xticks(np.arange(len(table)) + 0.4 - width / 2, list(table), fontsize=8)
    ax.set_ylabel(f"grid points keeping {100 * keep:g}% of the best gain")
    ax.set_title(
        f"C7: width of the good learning-rate range ({len(evidence.suite.lr_grid)}-point grid)", fontsize=9
    )
    ax.legend(fontsize=7, ncols=2)
    return _save(fig, path)


def formula_check(evidence: Evidence, problem: str, path: Path) -> bool:
    """Held-out loss against updates for each correct rule and its mistaken forms (median over seeds)."""
    fig, axes = _figure(6.4, 4.0)
    ax = axes[0, 0]
    drawn = False
    values: list[float] = []
    correct = sorted({m.correct for m in MISTAKES.values()}, key=list(METHODS).index)
    for method in correct:
        records = evidence.records(method, problem)
        drawn |= _band(ax, records, "step", COLOURS[method], f"{method} (correct)")
        values += [v for r in records for v in r.held_out.loss]
    for mistake in MISTAKES.values():
        records = evidence.formula(mistake.name, mistake.correct, problem)
        if not records:
            continue
        x, mid, _, _ = analysis.curve_band(records, "step")
        mid = mid[x > 0]
        x = x[x > 0]
        diverged = [r for r in records if r.diverged]
        if len(x):
            ax.plot(x, mid, color=COLOURS[mistake.name], linestyle="--", label=mistake.name, linewidth=1.2)
        if diverged:
            at = analysis.median([float(r.diverged_at or 0) for r in diverged])
            label = None if len(x) else f"{mistake.name} (diverged)"
            ax.axvline(max(at, 1.0), color=COLOURS[mistake.name], linestyle=":", linewidth=1.0, label=label)
        elif not len(x):
            continue
        values += [v for r in records for v in r.held_out.loss]
        drawn = True
    if not drawn:
        return False
    log_y = _positive(np.asarray(values, dtype=float))
    if log_y:
        ax.set_yscale("log")
    _limit_y([ax], values, log_y)
    ax.set_xscale("log")
    ax.set_xlabel("updates")
    ax.set_ylabel("held-out loss (median over seeds)")
    ax.set_title(
        f"{problem}: correct rules (solid) and mistaken forms (dashed; dotted: diverged)", fontsize=9
    )
    ax.legend(fontsize=6, ncols=2)
    return _save(fig, path)
