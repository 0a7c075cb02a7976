r"""C3: momentum carries on past saddle points and out of traps where plain descent stalls.

**Measure.** From each of the judging starts (at least 20, just off the
saddle's ridge, or in the trap's basin), the number of updates until the run
leaves the region (:math:`|y| \ge 0.5` off a saddle's ridge; across the
trap's saddle into the global minimum's basin), and the share of starts
that leave it at all within the budget. **Effect**: the mean over starts of
:math:`\log(T_{plain} / T_{momentum})`, both censored at the budget (a start
that never leaves counts as the budget, which understates the effect, never
overstates it); 0.41 is "momentum leaves 1.5 times as fast".

**Cases**: saddles of three conditionings (curvatures +2/-2, +10/-0.5 and
+100/-0.1: in the last, the stable step is set by the stiff direction, so
plain descent escapes at :math:`1 + \gamma k` per update with
:math:`\gamma < 2/h`) and the trap. **Control**: the same starts on a surface
with no saddle and the same curvatures at the minimum (no trap: a bowl
around the global minimum), at the same learning rates. Momentum also speeds
descent along any shallow direction; if it gains as much where there is no
saddle, the measure does not show that it passes saddles.

**Sub-claims**: at each method's tuned rate; and momentum at plain
descent's effective step (:math:`\gamma (1 - \beta)`), so that what is
measured is the momentum, not a larger step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import figures as figures_lib
from .. import stats
from ..evidence import Evidence
from ..landscapes import LANDSCAPES
from ..plan import Rates, Run, SurfaceRun, Tune
from ..suite import Suite
from ._base import Case, Claim, SubClaim, rows
from ._runs import escape_updates, fmt, surface_run, tunes_for

ID = "C3"
MIN_EFFECT = float(np.log(1.5))


def _control(land: str) -> str:
    return f"{land}-control"


def tunes(suite: Suite) -> list[Tune]:
    return tunes_for(suite, ("plain", "momentum", "momentum-matched"), suite.reads(ID))


def runs(suite: Suite, rates: Rates) -> list[Run]:
    out: list[Run] = []
    for land in suite.reads(ID):
        for role in ("plain", "momentum", "momentum-matched"):
            for method in suite.in_role(role):
                lr = rates.get(Tune(method, land))
                if lr is not None:
                    out += [SurfaceRun(method, land, (lr,)), SurfaceRun(method, _control(land), (lr,))]
    return out


def _times(ev: Evidence, run: SurfaceRun | None, land: str) -> np.ndarray | None:
    found = ev.get(run) if run is not None else None
    if found is None:
        return None
    left = LANDSCAPES[land].left(found.positions[:, 0])
    return escape_updates(left)


def _median_left(times: np.ndarray) -> str:
    """The median escape time among the starts that left ('never' is their share, given apart)."""
    left = times[np.isfinite(times)]
    return fmt(float(np.median(left))) if len(left) else "none left"


def _cases(role: str):
    def cases(ev: Evidence) -> list[Case]:
        out = []
        for land in ev.suite.reads(ID):
            steps = ev.suite.surface_steps(land)
            for plain in ev.suite.in_role("plain"):
                for other in ev.suite.in_role(role):
                    lr_plain, lr_other = ev.lr(plain, land), ev.lr(other, land)
                    label = land if other in ("momentum", "momentum-matched") else f"{land}: {other}"
                    t = [
                        _times(ev, surface_run(ev, m, name, lr=lr), name)
                        for name in (land, _control(land))
                        for m, lr in ((plain, lr_plain), (other, lr_other))
                    ]
                    if any(x is None for x in t) or lr_plain is None or lr_other is None:
                        out.append(
                            Case(label, np.zeros((0, 2)), note="a method has no tuned rate or no runs")
                        )
                        continue
                    cap = steps + 1  # never leaving counts as the whole budget
                    table = rows(np.minimum(t[0], cap), np.minimum(t[1], cap))
                    control = rows(np.minimum(t[2], cap), np.minimum(t[3], cap))
                    out.append(
                        Case(
                            label,
                            table,
                            control,
                            {
                                "lr plain": lr_plain,
                                f"lr {other}": lr_other,
                                "left the region, plain": f"{int(np.isfinite(t[0]).sum())}/{len(t[0])}",
                                f"left the region, {other}": f"{int(np.isfinite(t[1]).sum())}/{len(t[1])}",
                                "median updates to leave, of the starts that left, plain": _median_left(t[0]),
                                f"median updates to leave, of the starts that left, {other}": _median_left(
                                    t[1]
                                ),
                                "control: left, plain / momentum": (
                                    f"{int(np.isfinite(t[2]).sum())}/{len(t[2])} / "
                                    f"{int(np.isfinite(t[3]).sum())}/{len(t[3])}"
                                ),
                                "budget (updates)": steps,
                            },
                        )
                    )
        return out

    return cases


_MEASURE = (
    "updates until a start leaves the saddle's ridge (|y| >= 0.5) or the trap's basin, and the share of "
    "starts that leave within the budget, over the judging starts"
)
_EFFECT = "mean over starts of log(updates plain / updates momentum), both capped at the budget (0.41: 1.5x)"
_CONTROL = (
    "the same starts and rates on a surface with no saddle (or no trap) and the same curvature at the minimum"
)


def figures(ev: Evidence, folder: Path) -> list[tuple[str, str]]:
    out = []
    methods = [m for role in ("plain", "momentum", "momentum-matched") for m in ev.suite.in_role(role)]
    for land in ev.suite.reads(ID):
        for name in (land, _control(land)):
            file = f"c3-{name}.png"
            if figures_lib.paths(ev, name, methods, folder / file, rates_from=land):
                out.append((file, f"{name}: paths from the first judging starts, each method at its rate"))
    return out


CLAIM = Claim(
    id=ID,
    title="momentum past saddles and traps",
    statement="Plain gradient descent stalls at saddle points and in traps; momentum carries on past them.",
    source="'Momentum helps the iterate escape saddle points and shallow local minima, where plain gradient "
    "descent slows to a crawl.'",
    roles=("plain", "momentum", "momentum-matched"),
    subclaims=(
        SubClaim(
            "tuned",
            "At each method's tuned learning rate, momentum leaves the region sooner than plain descent.",
            _MEASURE,
            _EFFECT,
            _CONTROL,
            MIN_EFFECT,
            stats.mean_log_ratio,
            _cases("momentum"),
        ),
        SubClaim(
            "matched",
            "At plain descent's effective step, momentum leaves the region sooner than plain descent.",
            _MEASURE,
            _EFFECT,
            _CONTROL,
            MIN_EFFECT,
            stats.mean_log_ratio,
            _cases("momentum-matched"),
        ),
    ),
    tunes=tunes,
    runs=runs,
    text=__doc__ or "",
    figures=figures,
)
