"""The lab's figures on the data a partial or failed comparison leaves: drawn where there is data, skipped where none."""

from __future__ import annotations

import numpy as np

from descentlab.lab import figures

GRID = (0.01, 0.1, 1.0)


def test_a_sensitivity_figure_without_one_finite_loss_is_skipped_not_an_error(tmp_path):
    # Every grid run missing or diverged (a store that lost them): a log axis without data
    # made matplotlib raise "Data cannot be log-scaled", which failed the whole report.
    path = tmp_path / "c7.png"
    gone = {"adam": np.full(3, np.inf), "sgd": np.full(3, np.inf)}
    assert figures.sensitivity(GRID, gone, 1.0, path) is False
    assert not path.exists()


def test_a_sensitivity_figure_draws_the_methods_with_data_beside_one_without(tmp_path):
    path = tmp_path / "c7.png"
    losses = {"adam": np.array([0.5, 0.3, np.inf]), "sgd": np.full(3, np.inf)}
    assert figures.sensitivity(GRID, losses, 1.0, path) is True
    assert path.read_bytes().startswith(b"\x89PNG")
