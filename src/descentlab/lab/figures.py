"""The report's figures, drawn with matplotlib's object API (no pyplot, no global state).

Generic drawings only: a forest plot of any claim's findings, paths on any
landscape, loss curves of any runs, sensitivity curves; each claim declares
which of them it shows (:class:`~descentlab.lab.claims.Figure`), so nothing
here knows a claim. Each function writes a PNG atomically to the path given
and returns False, writing nothing, when there is nothing to draw. Figures are
built with ``matplotlib.figure.Figure``, which renders with Agg without
touching pyplot's global backend or figure list, and written without
timestamps, so the same evidence gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import _files
from .evidence import Evidence
from .findings import ClaimFinding
from .landscapes import Landscape
from .methods import METHODS
from .mistakes import MISTAKES
from .plan import SurfaceRun

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


def colour(method: str) -> str:
    """The method's colour (a user's method gets one from its name)."""
    return COLOURS.get(method, _PALETTE[sum(map(ord, method)) % len(_PALETTE)])


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


# -- the forest plot of a claim -----------------------------------------------------------------


def forest(finding: ClaimFinding, path: Path) -> bool:
    """Every case of every sub-claim: effect, 95% interval, its control's, the minimum effect or tolerance."""
    rows = [(sub, case) for sub in finding.subclaims for case in sub.cases if math.isfinite(case.effect)]
    if not rows:
        return False
    fig, axes = _figure(7.0, 0.9 + 0.42 * len(rows))
    ax = axes[0][0]
    labels = []
    for i, (sub, case) in enumerate(reversed(rows)):
        y = i
        labels.append(f"{sub.id.split('.', 1)[1]}: {case.label}")
        low, high = _finite_interval(case.low, case.high, case.effect)
        ax.plot([low, high], [y, y], color="#1f5fa6", linewidth=2.2)
        ax.plot(case.effect, y, "o", color="#1f5fa6", markersize=6)
        if math.isfinite(case.control_effect):
            clow, chigh = _finite_interval(case.control_low, case.control_high, case.control_effect)
            ax.plot([clow, chigh], [y - 0.28, y - 0.28], color="#9a9a9a", linewidth=1.6)
            ax.plot(case.control_effect, y - 0.28, "s", color="#9a9a9a", markersize=4)
        for edge in (sub.min_effect, -sub.min_effect):
            ax.axvline(edge, color="#d08c2b", linewidth=0.7, linestyle="--")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("effect (blue: the claim; grey: its control; dashed: the minimum effect or the tolerance)")
    ax.set_ylim(-0.8, len(rows) - 0.4)
    return _save(fig, path)


def _finite_interval(low: float, high: float, effect: float) -> tuple[float, float]:
    span = max(abs(effect), 1.0) * 10
    return (low if math.isfinite(low) else effect - span, high if math.isfinite(high) else effect + span)


# -- 2-D landscapes ------------------------------------------------------------------------------


def _contour(ax, land: Landscape) -> None:
    (x0, x1), (y0, y1) = land.bounds
    x, y = np.meshgrid(np.linspace(x0, x1, 240), np.linspace(y0, y1, 240))
    z = land(x, y)
    floor = float(np.min(z))
    levels = floor + np.geomspace(1e-3, max(float(np.max(z)) - floor, 1e-2), 18)
    ax.contour(x, y, z, levels=levels, colors="#b0b0b0", linewidths=0.6)
    ax.plot(*land.minimum, marker="*", color="black", markersize=11, linestyle="none")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def paths(
    evidence: Evidence,
    landscape: str,
    methods: Sequence[str],
    path: Path,
    starts: int = 4,
    rates_from: str | None = None,
    hover: bool = False,
) -> bool:
    """The first few judging starts of each method at its tuned rate, over the landscape's contours.

    ``rates_from``: the landscape whose tuned rates the runs used (a control runs at its claim's).
    """
    land = evidence.suite.landscape(landscape)
    fig, axes = _figure(6.0, 4.4)
    ax = axes[0][0]
    _contour(ax, land)
    drawn = False
    for method in methods:
        lr = evidence.lr(method, rates_from or landscape)
        run = SurfaceRun(method, landscape, (lr,), hover=hover) if lr is not None else None
        found = evidence.get(run) if run is not None else None
        if found is None:
            continue
        for unit in range(min(starts, found.positions.shape[2])):
            points = found.positions[:, 0, unit]
            points = points[np.isfinite(points).all(axis=1)]
            ax.plot(points[:, 0], points[:, 1], color=colour(method), linewidth=1.0, alpha=0.85,
                    label=f"{method} (lr {lr:g})" if unit == 0 else None)  # fmt: skip
            ax.plot(points[0, 0], points[0, 1], "o", color=colour(method), markersize=3)
        drawn = True
    if not drawn:
        return False
    ax.set_title(land.formula, fontsize=9)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


# -- curves ----------------------------------------------------------------------------------------


def curves(
    evidence: Evidence, series: dict[str, list], path: Path, axis: str = "step", log_y: bool = False
) -> bool:
    """Held-out loss against updates (``axis="step"``) or seconds: the median over runs, per label.

    ``series`` maps a label (a method name first) to the runs to draw.
    """
    fig, axes = _figure(6.4, 3.8)
    ax = axes[0][0]
    drawn = False
    for label, runs in series.items():
        records = [r for r in (evidence.get(run) for run in runs) if r is not None and r.held_out.loss]
        if not records:
            continue
        n = min(len(r.held_out.loss) for r in records)
        x = np.median([getattr(r.held_out, axis)[:n] for r in records], axis=0)
        y = np.median([r.held_out.loss[:n] for r in records], axis=0)
        ax.plot(x, y, color=colour(label.split(" ")[0]), label=label)
        drawn = True
    if not drawn:
        return False
    ax.set_xlabel({"step": "updates", "seconds": "training seconds", "samples": "samples"}[axis])
    ax.set_ylabel("held-out loss (median over seeds)")
    if log_y:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    return _save(fig, path)


def sensitivity(grid: Sequence[float], losses: dict[str, np.ndarray], start: float, path: Path) -> bool:
    """Mean final loss against the learning rate for each method, and the tuning-budget curves.

    Nothing is drawn (False) where no grid point has a finite loss: every run missing or
    diverged leaves no data, and a log axis without data cannot be drawn at all.
    """
    finite_all = np.concatenate([v[np.isfinite(v)] for v in losses.values()] or [np.zeros(0)])
    if not len(finite_all):
        return False
    from .claims.c7_tuning import budget_curve

    fig, axes = _figure(10.0, 3.8, ncols=2)
    left, right = axes[0]
    for method, mean in losses.items():
        shown = np.where(np.isfinite(mean), mean, np.nan)
        left.plot(grid, shown, marker=".", color=colour(method), label=method)
        right.plot(range(1, len(mean) + 1), budget_curve(mean, start), color=colour(method), label=method)
    left.axhline(start, color="black", linewidth=0.7, linestyle=":")
    left.set_xscale("log")
    if min(grid) < max(grid):  # the whole grid, also where a method's points are gaps
        left.set_xlim(min(grid), max(grid))
    left.set_xlabel("learning rate")
    left.set_ylabel("final held-out loss (mean; gap: diverged)")
    top = max(start, float(np.quantile(finite_all, 0.9)))
    left.set_ylim(float(np.min(finite_all)) - 0.05 * abs(top), top + 0.05 * abs(top))
    right.set_ylim(float(np.min(finite_all)) - 0.05 * abs(top), top + 0.05 * abs(top))
    right.set_xlabel("learning rates tried at random (k)")
    right.set_ylabel("expected best final loss")
    left.legend(fontsize=7)
    return _save(fig, path)
