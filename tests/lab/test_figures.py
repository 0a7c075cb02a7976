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
