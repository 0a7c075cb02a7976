r"""C7: Adam needs the least tuning: it is the least sensitive to the choice of learning rate.

Every method runs at every learning rate of a grid twice as fine as the
tuning grid, over the same range, with at least 5 seeds (on a 2-D surface:
every judging start), and is read on the held-out half.

**Measure.** On each problem one threshold for all methods: a learning rate
is *good* when the mean final loss there keeps at least 80% of the best
improvement over the starting loss that *any* method reached on that
problem. The width of a method's good range is the number of good grid
points times the grid step, in decades. **Effect**: Adam's width minus the
widest other method's. The minimum effect is an eighth of a decade (half a
step of the default suite's fine grid, a quarter of the quick suite's), so a
tie is not support. A range that touches an end of the grid is a lower bound (the
report says where).

**Control**: EMA momentum (Adam's averaging without its per-coordinate
scaling, what Adam becomes with a large epsilon) in Adam's place: if it is
as robust, Adam's robustness does not come from its scaling.

The report also draws the tuning-budget curve (Sivaprasad et al. 2020;
Schmidt et al. 2021): the expected best loss found with *k* learning rates
drawn at random from the grid, for k = 1 to the grid's size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import figures as figures_lib
from ..evidence import Evidence
from ..plan import DataRun, Rates, Run, SurfaceRun, Tune, is_surface
from ..suite import Suite
from ._base import Case, Claim, SubClaim
from ._runs import final_test_loss

ID = "C7"
KEEP = 0.8
OTHERS = ("plain", "momentum", "adagrad", "rmsprop")


def tunes(suite: Suite) -> list[Tune]:
    return []  # C7 reads its own grid, not a tuned rate


def _methods(suite: Suite) -> list[str]:
    roles = ("adam", *OTHERS, "unnormalised")
    return list(dict.fromkeys(m for role in roles for m in suite.in_role(role)))


def _grid_runs(suite: Suite, method: str, problem: str) -> list[Run]:
    grid = suite.fine_grid()
    if is_surface(problem):
        return [SurfaceRun(method, problem, grid, "judge")]
    return [DataRun(method, problem, lr, seed) for seed in suite.grid_seed_list for lr in grid]


def runs(suite: Suite, rates: Rates) -> list[Run]:
    return [r for problem in suite.reads(ID) for m in _methods(suite) for r in _grid_runs(suite, m, problem)]


def _losses(ev: Evidence, method: str, problem: str) -> tuple[np.ndarray, float] | None:
    """Final held-out losses (units, lrs) of ``method``'s grid on ``problem``, and the starting loss."""
    grid = ev.suite.fine_grid()
    if is_surface(problem):
        found = ev.get(_grid_runs(ev.suite, method, problem)[0])
        if found is None:
            return None
        return found.final_losses().T, float(np.median(found.losses[0]))
    table = np.full((len(ev.suite.grid_seed_list), len(grid)), math.inf)
    starts = []
    for run in _grid_runs(ev.suite, method, problem):
        record = ev.get(run)
        if record is not None and record.held_out.loss:
            starts.append(record.held_out.loss[0])
        table[ev.suite.grid_seed_list.index(run.seed), grid.index(run.lr)] = final_test_loss(record)  # type: ignore[union-attr]
    return (table, float(np.median(starts))) if starts else None


def width_statistic(n_methods: int, step: float, start: float):
    """The effect from a table whose columns are the methods' grids (claimed method first), units as rows."""

    def effect(rows: np.ndarray) -> float:
        curves = rows.reshape(len(rows), n_methods, -1)
        with np.errstate(invalid="ignore"):
            mean = np.where(np.isfinite(curves).all(axis=0), curves.mean(axis=0), np.inf)
        best = float(np.min(mean))
        gain = start - best
        if not gain > 0:
            return math.nan
        good = (start - mean) >= KEEP * gain
        widths = good.sum(axis=1) * step
        return float(widths[0] - widths[1:].max())

    return effect


def budget_curve(mean: np.ndarray, start: float) -> list[float]:
    """Expected best loss with k grid points drawn at random (with replacement), k = 1 .. len(mean).

    A diverged point (inf) counts as the starting loss: a trial that blew up
    found nothing better than where it began, and a tuner would keep the start.

    >>> budget_curve(np.array([3.0, 1.0]), start=4.0)
    [2.0, 1.5]
    >>> budget_curve(np.array([np.inf, 1.0]), start=4.0)
    [2.5, 1.75]
    """
    ordered = np.sort(np.where(np.isfinite(mean), np.minimum(mean, start), start))
    n = len(ordered)
    i = np.arange(n)
    # P(the best of k draws is the i-th smallest, i from 0) = ((n - i)/n)^k - ((n - i - 1)/n)^k
    return [float((((n - i) / n) ** k - ((n - i - 1) / n) ** k) @ ordered) for k in range(1, n + 1)]


def _good_range(
    mean: np.ndarray, start: float, best: float, grid: Sequence[float]
) -> tuple[list[float], bool]:
    good = [lr for lr, loss in zip(grid, mean, strict=True) if start - loss >= KEEP * (start - best)]
    edge = bool(good) and (good[0] == grid[0] or good[-1] == grid[-1])
    return good, edge


def _cases(ev: Evidence) -> list[Case]:
    out = []
    grid = ev.suite.fine_grid()
    step = 1 / (2 * ev.suite.per_decade)
    others = [m for role in OTHERS for m in ev.suite.in_role(role)]
    controls = ev.suite.in_role("unnormalised")
    for problem in ev.suite.reads(ID):
        for claimed in ev.suite.in_role("adam"):
            label = problem if claimed == "adam" else f"{problem}: {claimed}"
            tables = {m: _losses(ev, m, problem) for m in (claimed, *others, *controls)}
            if any(tables[m] is None for m in (claimed, *others)):
                out.append(Case(label, np.zeros((0, 1)), note="a method's grid has no runs"))
                continue
            start = float(np.median([tables[m][1] for m in (claimed, *others)]))  # type: ignore[index]
            stack = [tables[m][0] for m in (claimed, *others)]  # type: ignore[index]
            rows = np.concatenate(stack, axis=1)
            control = None
            if controls and tables[controls[0]] is not None:
                control = np.concatenate([tables[controls[0]][0], *stack[1:]], axis=1)  # type: ignore[index]
            means = {m: _mean(t[0]) for m, t in tables.items() if t is not None}
            best = min(float(np.min(v)) for v in means.values())
            ranges = {m: _good_range(v, start, best, grid) for m, v in means.items()}
            out.append(
                Case(
                    label,
                    rows,
                    control,
                    {
                        "good range (decades)": {m: len(g) * step for m, (g, _) in ranges.items()},
                        "good learning rates": {
                            m: [min(g), max(g)] if g else [] for m, (g, _) in ranges.items()
                        },
                        "range touches the grid's end": [m for m, (_, edge) in ranges.items() if edge],
                        "threshold": f"keeps {100 * KEEP:g}% of the best improvement any method reached",
                        "tuning-budget curve (expected best loss, k = 1 ..)": {
                            m: budget_curve(v, start) for m, v in means.items()
                        },
                    },
                    statistic=width_statistic(1 + len(others), step, start),
                )
            )
    return out


def _mean(table: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(table).all(axis=0), table.mean(axis=0), np.inf)


def figures(ev: Evidence, folder: Path) -> list[tuple[str, str]]:
    out = []
    for problem in ev.suite.reads(ID):
        tables = {m: _losses(ev, m, problem) for m in _methods(ev.suite)}
        found = {m: t for m, t in tables.items() if t is not None}
        if not found:
            continue
        start = float(np.median([t[1] for t in found.values()]))
        name = f"c7-{problem}.png"
        if figures_lib.sensitivity(
            ev.suite.fine_grid(), {m: _mean(t[0]) for m, t in found.items()}, start, folder / name
        ):
            out.append(
                (
                    name,
                    f"{problem}: final loss against the learning rate (left; dotted: the start) "
                    "and the expected best loss with k random learning rates (right)",
                )
            )
    return out


CLAIM = Claim(
    id=ID,
    title="Adam and the learning rate",
    statement="Adam needs the least tuning: it is the least sensitive to the choice of learning rate.",
    source="'Adam works well with its default settings and is far less sensitive to the learning rate than "
    "SGD, so it needs little tuning.'",
    roles=("adam", *OTHERS, "unnormalised"),
    subclaims=(
        SubClaim(
            "width",
            "Adam's range of good learning rates is wider than every other method's.",
            "width in decades of the learning rates whose mean final held-out loss keeps 80% of the best "
            "improvement any method reached on the problem (one threshold for all), on a grid twice as fine",
            "Adam's width minus the widest other method's, in decades; the minimum effect, an eighth of a "
            "decade, is less than one grid point, so a tie is not support",
            "EMA momentum (Adam without its per-coordinate scaling) in Adam's place",
            0.125,
            None,  # each case's own: it depends on the grid's length and the problem's starting loss
            _cases,
            null_control=False,  # EMA momentum in Adam's place: it can only show a support is not Adam's
        ),
    ),
    tunes=tunes,
    runs=runs,
    text=__doc__ or "",
    figures=figures,
    variations=("grid-shift", "geometry", "budget"),
    not_varied={"tuning-seed": "C7 tunes nothing: every method runs at every rate of its grid"},
)
