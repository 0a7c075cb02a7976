r"""C4: momentum damps the effect of outlier samples on the path.

**Design.** Each surface runs with *outlier* noise (2% of the samples carry
half the variance) and with its *Gaussian twin*: Gaussian noise recoloured to
the outliers' exact empirical covariance, so the two differ only in the
shape of their tails. Plain SGD runs at its tuned rate, momentum at plain
SGD's effective step :math:`\gamma (1 - \beta)` (and, as a second case, at its
own tuned rate), every judging start, the same mini-batches for both. The
rates are tuned from the usual starts; the judged runs start next to the
minimum, so that what they measure is how the noise moves the parameters
once there, not an approach to the minimum that a smaller step makes slower.

**Measure.** Over the second half of each path (where it hovers near the
minimum): the mean squared distance to the tail's own mean (*deviation*:
the spread the noise causes), and the mean excess loss :math:`f - f^*`
(*loss*). What outliers *add* is the ratio
of the outlier run's to the twin's, minus 1:
:math:`R = \overline{D}_{out} / \overline{D}_{twin} - 1`, for each method.
**Effect**: :math:`R_{plain} - R_{momentum}` (0.1: momentum removes a tenth of
the outliers' extra deviation, relative to its own Gaussian baseline). Because
each method is compared with its own twin, a smaller step alone, which
shrinks the outlier and the Gaussian deviations alike, does not count as
damping.

**Control**: the same effect with a second Gaussian twin in place of the
outliers (no outliers at all): it should be 0.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import figures as figures_lib
from ..evidence import Evidence
from ..plan import Rates, Run, SurfaceRun, Tune
from ..suite import Suite
from ._base import Case, Claim, SubClaim, rows
from ._runs import fmt, surface_run, tunes_for

ID = "C4"
ROLES = ("plain", "momentum-matched", "momentum")
NOISES = ("", "twin", "twin-b")
MIN_EFFECT = 0.1


def tunes(suite: Suite) -> list[Tune]:
    return tunes_for(suite, ROLES, suite.reads(ID))


def runs(suite: Suite, rates: Rates) -> list[Run]:
    out: list[Run] = []
    for land in suite.reads(ID):
        for role in ROLES:
            for method in suite.in_role(role):
                lr = rates.get(Tune(method, land))
                if lr is not None:
                    out += [SurfaceRun(method, land, (lr,), "judge", noise, hover=True) for noise in NOISES]
    return out


def extra(rows_: np.ndarray) -> float:
    """R_plain - R_momentum from columns [out plain, twin plain, out momentum, twin momentum]."""
    means = rows_.mean(axis=0)
    if means[1] <= 0 or means[3] <= 0:
        return float("nan")
    return float((means[0] / means[1] - 1) - (means[2] / means[3] - 1))


def _tail(ev: Evidence, run: SurfaceRun | None, land: str, what: str) -> np.ndarray | None:
    found = ev.get(run) if run is not None else None
    if found is None:
        return None
    spec = ev.suite.landscape(land)
    positions = found.positions[:, 0]
    half = positions[len(positions) // 2 :]
    if what == "deviation":
        # About the tail's own mean: the spread the noise causes, not an offset the run shares with its twin.
        values = ((half - half.mean(axis=0, keepdims=True)) ** 2).sum(axis=-1)
    else:
        values = found.losses[len(positions) // 2 :, 0] - spec.f_min
    # A diverged start has no tail: marked infinite here, then left out of its case and counted
    # ("diverged starts (left out)").
    return np.where(np.isfinite(values).all(axis=0), values.mean(axis=0), np.inf)


def _cases(what: str):
    def cases(ev: Evidence) -> list[Case]:
        out = []
        for land in ev.suite.reads(ID):
            for plain in ev.suite.in_role("plain"):
                for role in ("momentum-matched", "momentum"):
                    for other in ev.suite.in_role(role):
                        label = f"{land}, {'matched step' if role == 'momentum-matched' else 'tuned'}"
                        if other not in ("momentum", "momentum-matched"):
                            label += f": {other}"
                        lr_p, lr_o = ev.lr(plain, land), ev.lr(other, land)
                        tails = {
                            (m, noise): _tail(
                                ev, surface_run(ev, m, land, noise=noise, lr=lr, hover=True), land, what
                            )
                            for m, lr in ((plain, lr_p), (other, lr_o))
                            for noise in NOISES
                        }
                        if lr_p is None or lr_o is None or any(v is None for v in tails.values()):
                            out.append(
                                Case(label, np.zeros((0, 4)), note="a method has no tuned rate or no runs")
                            )
                            continue
                        treated = rows(
                            tails[plain, ""], tails[plain, "twin"], tails[other, ""], tails[other, "twin"]
                        )
                        control = rows(
                            tails[plain, "twin-b"],
                            tails[plain, "twin"],
                            tails[other, "twin-b"],
                            tails[other, "twin"],
                        )
                        finite = np.isfinite(treated).all(axis=1) & np.isfinite(control).all(axis=1)
                        twin = next(
                            (
                                i
                                for i, c in enumerate(out)
                                if c.label.startswith(f"{land}, matched step")
                                and np.array_equal(c.rows, treated[finite])
                                and c.control is not None
                                and np.array_equal(c.control, control[finite])
                            ),
                            None,
                        )
                        if twin is not None:
                            # The tuned rate is the matched one: the same runs, one case (counted once).
                            out[twin] = replace(out[twin], label=out[twin].label + " = tuned")
                            continue
                        means = treated[finite].mean(axis=0) if finite.any() else np.full(4, np.nan)
                        out.append(
                            Case(
                                label,
                                treated[finite],
                                control[finite],
                                {
                                    "lr plain": lr_p,
                                    f"lr {other}": lr_o,
                                    f"{what} plain: outliers / twin": f"{fmt(means[0])} / {fmt(means[1])}",
                                    f"{what} {other}: outliers / twin": f"{fmt(means[2])} / {fmt(means[3])}",
                                    "diverged starts (left out)": int((~finite).sum()),
                                },
                            )
                        )
        return out

    return cases


_EFFECT = (
    "R_plain - R_momentum, where R = mean over starts with outliers / mean with the Gaussian twin - 1: "
    "the outliers' extra {what}, relative to the method's own Gaussian baseline"
)
_QUANTITY = {"deviation": "squared distance to its mean", "loss": "excess loss f - f*"}
_CONTROL = "the same effect with a second Gaussian twin in place of the outliers (no outliers): should be 0"


def figures(ev: Evidence, folder: Path) -> list[tuple[str, str]]:
    out = []
    methods = [m for role in ROLES for m in ev.suite.in_role(role)]
    for land in ev.suite.reads(ID):
        file = f"c4-{land}.png"
        if figures_lib.paths(ev, land, methods, folder / file, starts=2, hover=True):
            out.append((file, f"{land}: paths with outlier noise from the first judging starts"))
    return out


CLAIM = Claim(
    id=ID,
    title="momentum damps outliers",
    statement="Momentum with beta = 0.9 damps the effect of outlier samples on the path.",
    source="'Momentum averages the gradients of many samples, so a single outlier sample cannot throw the "
    "parameters far off course.'",
    roles=ROLES,
    subclaims=tuple(
        SubClaim(
            what,
            f"Momentum reduces the extra {what} that outlier samples cause, beyond what its step size does.",
            f"over the second half of each path, the mean {_QUANTITY[what]}, "
            "with outlier noise and with its Gaussian twin of the same covariance",
            _EFFECT.format(what=what),
            _CONTROL,
            MIN_EFFECT,
            extra,
            _cases(what),
        )
        for what in ("deviation", "loss")
    ),
    tunes=tunes,
    runs=runs,
    text=__doc__ or "",
    figures=figures,
)
