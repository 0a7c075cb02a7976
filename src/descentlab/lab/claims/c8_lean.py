r"""C8: lean optimizer state (bfloat16, 8-bit) trains as well as full precision.

Every method with state (SGD with momentum, AdaGrad, RMSProp, Adam, AdamW) runs on
each problem three times per seed: with full-precision (float32) state, with
``lean_state="bfloat16"`` and with ``lean_state="8bit"``. The runs of a seed
are paired: the same seed, so the same start and the same order of the data,
and the same learning rate, full precision's tuned rate (the lean forms are
not tuned: a lean form that needs another rate does not train as well).
The problems are sized so that lean state applies: it does only to
parameters of at least 4,096 elements (``descentlab.optim._lean.MIN_ELEMENTS``),
so the quadratic has 4,096 dimensions and each network a weight matrix of
4,096 or more. Every run records how its state is stored (the observer
``lean-state``); a case whose lean runs kept no state lean is not measured.

One sub-claim per form, **bfloat16** and **8bit**, each an *equivalence*:

- **measure**: the final training loss, the mean of the per-update losses
  over the last tenth of the run (the optimizer's work; the held-out loss,
  which adds the noise of generalisation, is given beside it);
- **effect**: mean over seeds of :math:`\log(L_{lean} / L_{full})` (0.01:
  lean state ends 1% higher);
- **tolerance**, stated here before any run: 0.02, lean state's final
  training loss within 2% of full precision's. The case is *supported*
  (equivalent within the tolerance) only when its whole 95% interval lies
  within :math:`\pm 0.02`, *contradicted* when it lies wholly outside, and
  *inconclusive* otherwise.

**Control**: Adam with bfloat16 state rounded to nearest
(``state_dtype=bfloat16``), the known failure: with 8 significant bits,
:math:`0.999\,v` rounds back to :math:`v`, so Adam's second moment never
decays and grows only on gradients several times its size, and the late
steps go wrong. Measured the same way on the same problem, seeds and rate
against full-precision Adam; every case of the problem is read against it.
The measure must show the failure there: unless the control comes out
*contradicted* (its whole interval outside the tolerance), the problem cannot
tell lean state that works from lean state that does not (within its budget
the second moment's failure has not shown, or the measure is too noisy to
show it), and its cases are inconclusive.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import figures as figures_lib
from .. import stats
from ..evidence import Evidence
from ..plan import Rates, Run, Tune
from ..suite import Suite
from ._base import Case, Claim, SubClaim
from ._runs import failed, fmt, judged, records

ID = "C8"
ROLES = ("momentum", "adagrad", "rmsprop", "adam", "adamw")
#: The lean forms, each a sub-claim: the optimizer arguments that choose it.
FORMS = {"bfloat16": (("lean_state", "bfloat16"),), "8bit": (("lean_state", "8bit"),)}
#: The control: bfloat16 state with plain (nearest) rounding, on Adam.
PLAIN = (("state_dtype", "bfloat16"),)
#: Stated before any run: lean state's final training loss within 2% of full precision's (log ratio).
TOLERANCE = 0.02
OBSERVER = "lean-state"


def methods(suite: Suite) -> list[str]:
    """The built-in methods filling :data:`ROLES`, each once.

    Lean state is an option of descentlab's classes (``lean_state``): a user's
    optimizer, whatever roles it fills, has no lean form to compare.
    """
    every = suite.methods()
    return list(dict.fromkeys(m for role in ROLES for m in suite.in_role(role) if not every[m].user))


def tunes(suite: Suite) -> list[Tune]:
    return [Tune(m, p) for p in suite.reads(ID) for m in methods(suite)]


def _runs(suite: Suite, rates: Rates, method: str, problem: str, state: tuple = ()) -> list[Run]:
    """``method``'s judged runs at its full-precision tuned rate, with state stored as ``state`` says."""
    return judged(suite, rates, method, problem, observers=(OBSERVER,), hyperparameters=state)


def _adam(suite: Suite) -> str:
    return suite.in_role("adam")[0]


def runs(suite: Suite, rates: Rates) -> list[Run]:
    out: list[Run] = []
    for problem in suite.reads(ID):
        for method in methods(suite):
            for state in ((), *FORMS.values()):
                out += _runs(suite, rates, method, problem, state)
        out += _runs(suite, rates, _adam(suite), problem, PLAIN)
    return out


def final_training_loss(record) -> float:
    """The mean per-update loss over the last tenth of a run (inf: missing, failed or diverged)."""
    if record is None or record.diverged or not record.train_loss:
        return math.inf
    losses = np.asarray(record.train_loss, dtype=float)
    value = float(losses[-max(1, round(0.1 * len(losses))) :].mean())
    return value if math.isfinite(value) else math.inf


def _held_out(record) -> float:
    if record is None or record.diverged or not record.held_out.loss:
        return math.inf
    return float(record.held_out.loss[-1])


def lean_share(record) -> float:
    """The share of the model's elements whose state the run stored lean, at its end (NaN: not recorded)."""
    series = record.observations.get(OBSERVER) if record is not None else None
    return float(series.value[-1][0]) if series is not None and series.value else math.nan


def _state_bytes(record) -> float:
    series = record.observations.get(OBSERVER) if record is not None else None
    return float(series.value[-1][1]) if series is not None and series.value else math.nan


def paired(lean: list, full: list, value=final_training_loss) -> np.ndarray:
    """Rows (lean, full) of ``value`` per seed where full precision has a finite value.

    A lean run that diverged or failed where full precision did not stays in, as inf: then the
    effect cannot be computed and the case cannot be supported (it is not left out as if it trained).
    """
    table = np.array([(value(a), value(b)) for a, b in zip(lean, full, strict=True)], dtype=float)
    table = table.reshape(-1, 2)
    return table[np.isfinite(table[:, 1])]


def _means(rows: np.ndarray) -> str:
    """'full / lean': the mean of each column of (lean, full) rows."""
    return f"{fmt(float(np.mean(rows[:, 1])))} / {fmt(float(np.mean(rows[:, 0])))}" if len(rows) else "-"


def _mean_log(rows: np.ndarray) -> str:
    rows = rows[np.isfinite(rows).all(axis=1)]
    return fmt(stats.mean_log_ratio(rows)) if len(rows) else "-"


def _cases(form: str):
    def cases(ev: Evidence) -> list[Case]:
        out = []
        for problem in ev.suite.reads(ID):
            adam = _adam(ev.suite)
            adam_full = records(ev, _runs(ev.suite, ev.rates, adam, problem))
            plain = records(ev, _runs(ev.suite, ev.rates, adam, problem, PLAIN))
            control = paired(plain, adam_full) if plain and adam_full else None
            for method in methods(ev.suite):
                label = f"{problem}, {method}"
                full = records(ev, _runs(ev.suite, ev.rates, method, problem))
                lean = records(ev, _runs(ev.suite, ev.rates, method, problem, FORMS[form]))
                if not full or not lean:
                    out.append(Case(label, np.zeros((0, 2)), note="a method has no tuned rate"))
                    continue
                shares = [lean_share(r) for r in lean if r is not None]
                if not shares or not all(s > 0 for s in shares):
                    # The model has no parameter large enough: lean and full precision are the same runs.
                    out.append(Case(label, np.zeros((0, 2)), note="lean state did not apply"))
                    continue
                table = paired(lean, full)
                finite = table[np.isfinite(table).all(axis=1)]
                out.append(
                    Case(
                        label,
                        table,
                        control,
                        {
                            "lr (full precision's tuned rate, every form)": ev.lr(method, problem),
                            "final training loss, full precision / lean": _means(finite),
                            "held-out loss, mean of log(lean / full)": _mean_log(
                                paired(lean, full, _held_out)
                            ),
                            "share of the parameters with lean state": f"{100 * min(shares):.0f}%",
                            "state bytes per parameter, full precision / lean": (
                                f"{fmt(_state_bytes(full[0]))} / {fmt(_state_bytes(lean[0]))}"
                            ),
                            "lean runs diverged or failed": failed(lean),
                        },
                    )
                )
        return out

    return cases


def figures(ev: Evidence, folder: Path) -> list[tuple[str, str]]:
    out = []
    adam = _adam(ev.suite)
    for problem in ev.suite.reads(ID):
        # The first word picks the colour (figures.colour): four words with four colours.
        series = {
            "full-precision (float32) state": _runs(ev.suite, ev.rates, adam, problem),
            "bf16: bfloat16 state": _runs(ev.suite, ev.rates, adam, problem, FORMS["bfloat16"]),
            "uint8: 8-bit state": _runs(ev.suite, ev.rates, adam, problem, FORMS["8bit"]),
            "plain-rounded bfloat16 state (the control)": _runs(ev.suite, ev.rates, adam, problem, PLAIN),
        }
        name = f"c8-{problem}.png"
        if figures_lib.curves(ev, series, folder / name, axis="step"):
            out.append((name, f"{problem}: Adam's held-out loss with each form of state, median over seeds"))
    return out


def _subclaim(form: str, statement: str) -> SubClaim:
    return SubClaim(
        form,
        statement,
        "final training loss: the mean per-update loss over the last tenth of the run, every form at full "
        "precision's tuned rate, paired by seed",
        "mean over seeds of log(final training loss lean / full precision) (0.01: 1% higher)",
        "Adam with bfloat16 state rounded to nearest (state_dtype=bfloat16), the known failure: its "
        "second moment never decays",
        TOLERANCE,
        stats.mean_log_ratio,
        _cases(form),
        rule=stats.EQUIVALENCE,
    )


CLAIM = Claim(
    id=ID,
    title="lean optimizer state",
    statement="Optimizer state kept in bfloat16 with stochastic rounding, or in 8 bits block-wise, "
    "trains as well as full-precision state: the final loss is within 2% (the tolerance, stated in advance).",
    source="'Keep the optimizer state in 8 bits or bfloat16 to save memory: with block-wise quantization "
    "or stochastic rounding, training matches 32-bit state.'",
    roles=ROLES,
    subclaims=(
        _subclaim("bfloat16", "bfloat16 state with stochastic rounding trains as well as full precision."),
        _subclaim("8bit", "8-bit block-wise state trains as well as full precision."),
    ),
    tunes=tunes,
    runs=runs,
    text=__doc__ or "",
    figures=figures,
    variations=(),
    not_varied=dict.fromkeys(
        ("grid-shift", "geometry", "budget", "tuning-seed"),
        "it would repeat every run of this claim (three forms of state for every method), "
        "more than the default run's time allows",
    ),
)
