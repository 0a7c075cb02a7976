"""Training in three regimes (full batch, mini-batch, online), resumable bit for bit.

- :func:`fit`: the loop, for a model, optimizer and loss the caller builds;
- :func:`run`: one run from a :class:`RunConfig` (a problem from
  :mod:`descentlab.problems`, an optimizer from :mod:`descentlab.optim`), the
  function the lab's workers call;
- :class:`RunRecord`: what a run leaves: curves, held-out evaluations,
  observations, divergence; lossless JSON.
"""

from __future__ import annotations

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Budget, Every, FullBatch, MiniBatch, Online, Regime, RunConfig, Schedule
from .data import GeneratedStream, Table, accuracy, evaluate
from .loop import fit
from .observers import (
    OBSERVERS,
    Observer,
    Snapshot,
    effective_lr,
    get_observer,
    parameter_path,
    per_coordinate_lr,
)
from .record import HeldOut, RunRecord, Series
from .run import SCHEDULERS, build_optimizer, build_scheduler, default_config, run, run_id

__all__ = [
    "OBSERVERS",
    "SCHEDULERS",
    "Budget",
    "Every",
    "FullBatch",
    "GeneratedStream",
    "HeldOut",
    "MiniBatch",
    "Observer",
    "Online",
    "Regime",
    "RunConfig",
    "RunRecord",
    "Schedule",
    "Series",
    "Snapshot",
    "Table",
    "accuracy",
    "build_optimizer",
    "build_scheduler",
    "default_config",
    "effective_lr",
    "evaluate",
    "fit",
    "get_observer",
    "load_checkpoint",
    "parameter_path",
    "per_coordinate_lr",
    "run",
    "run_id",
    "save_checkpoint",
]
