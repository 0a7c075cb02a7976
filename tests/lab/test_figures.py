"""Figures drawn from awkward but legitimate stored runs (the end-to-end tests draw the usual ones)."""

from __future__ import annotations

import dataclasses

import pytest

from claimcases import BEST_LR, fake_evidence
from descentlab.lab import figures, protocol


def blown_up(loss: float):
    """An ``alter`` for fake_evidence: the tuning runs at the largest rates end at ``loss``."""

    def alter(trial: protocol.Trial, record):
        if trial.experiment != protocol.TUNE or trial.lr <= BEST_LR:
            return record
        held_out = dataclasses.replace(record.held_out, loss=[*record.held_out.loss[:-1], loss])
        return dataclasses.replace(record, held_out=held_out)

    return alter


@pytest.mark.parametrize("loss", [1e300, 1.7e308])
def test_runs_that_blew_up_to_a_huge_finite_loss_are_drawn(tmp_path, loss):
    # A run at too large a rate can end at a finite loss near the float limit; the axes once
    # stretched to it and matplotlib's tick arithmetic overflowed, losing the whole report.
    evidence = fake_evidence(True, alter=blown_up(loss))
    for problem in ("sparse-logreg", "quadratic2d-outliers"):
        assert figures.lr_sensitivity(evidence, problem, tmp_path / f"{problem}-lr.png")
        assert (tmp_path / f"{problem}-lr.png").stat().st_size > 0
    assert figures.sensitivity_counts(evidence, tmp_path / "counts.png", keep=0.8)


def test_the_formula_check_says_what_a_mistaken_rule_did():
    from claimcases import record
    from descentlab.lab.report import FORMULA_CLOSE, FORMULA_STALLS, _outcome

    start, right = 10.0, 2.0  # the correct rule improved by 8
    stalls = start - (FORMULA_STALLS / 2) * (start - right)
    assert _outcome([record([start, stalls])], start, right).startswith(f"stalled at {stalls:g}: 25%")
    partial = start - (FORMULA_STALLS + FORMULA_CLOSE) / 2 * (start - right)
    assert _outcome([record([start, partial])], start, right).startswith(f"ended at {partial:g}: 70%")
    assert "about as well as the correct rule or better (125%)" in _outcome(
        [record([start, 0.0])], start, right
    )
    assert _outcome([record([start, 12.0])], start, right).startswith("made the loss worse")
    assert _outcome([record([start, 5.0], diverged=True)] * 2, start, right).startswith("diverged in 2 of 2")
    # the correct rule never got below the start: no share of its improvement to report (was "nan%")
    said = _outcome([record([start, 9.0])], start, 11.0)
    assert "nan" not in said and "did not get below" in said
