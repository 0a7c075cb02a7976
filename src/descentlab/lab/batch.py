r"""Many 2-D runs as one: every start, seed and learning rate of a surface experiment in one tensor.

The update rules are elementwise, so ``U`` independent runs on a 2-D surface
are exactly one run on a ``(U, 2)`` parameter whose loss is the sum of the
runs' losses: each row's gradient is its own run's gradient, and the
optimizer's state is per element. Each learning rate is a parameter group of
its own. The optimizer is the real one (descentlab's, a mistaken rule, or
the user's class), built by :meth:`~descentlab.lab.methods.Method.build`.

Noisy surfaces: sample :math:`i`'s loss is :math:`f(\theta) + \xi_i^\top
\theta` (see :mod:`descentlab.problems.surfaces`); each unit draws its own
mini-batches (a new permutation of the samples every epoch, from a generator
derived from the unit's seed), and every learning rate and every method sees
the same draws for the same unit: comparisons are paired.

A run that blows up (a non-finite value, or a coordinate beyond ``1e6``) is
*diverged* from that update on: its row is frozen at NaN, and the others go on.

>>> from descentlab.lab.landscapes import LANDSCAPES
>>> from descentlab.lab.methods import METHODS
>>> land = LANDSCAPES["saddle"]
>>> out = run_batch(land, METHODS["sgd"], lrs=(0.1, 0.3), starts=land.start_points(4, 0), steps=50)
>>> out.positions.shape, bool(land.left(out.positions[-1]).all())
((51, 2, 4, 2), True)
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import _random
from .landscapes import Landscape
from .methods import Method

#: A coordinate beyond this counts as diverged (no landscape's region is anywhere near it).
BLOW_UP = 1e6


@dataclass(frozen=True)
class Batch:
    """A batched run's record: positions (steps + 1, lrs, units, 2), exact losses (steps + 1, lrs, units)."""

    lrs: tuple[float, ...]
    positions: np.ndarray
    losses: np.ndarray

    @property
    def steps(self) -> int:
        """How many updates each run made."""
        return self.positions.shape[0] - 1

    def at(self, lr: float) -> Batch:
        """The runs at one learning rate (lrs of length 1)."""
        i = self.lrs.index(lr)
        return Batch((lr,), self.positions[:, i : i + 1], self.losses[:, i : i + 1])

    def final_losses(self) -> np.ndarray:
        """The last loss of every run (lrs, units), inf for a diverged run."""
        last = self.losses[-1]
        return np.where(np.isfinite(last), last, np.inf)

    def to_bytes(self) -> bytes:
        """The batch as a compressed NumPy archive (what the store keeps)."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            lrs=np.asarray(self.lrs, dtype=float),
            positions=self.positions.astype(np.float32),
            losses=self.losses,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Batch:
        """The batch :meth:`to_bytes` wrote."""
        with np.load(io.BytesIO(data)) as archive:
            return cls(
                tuple(float(v) for v in archive["lrs"]),
                archive["positions"].astype(np.float64),
                archive["losses"],
            )


def run_batch(
    land: Landscape,
    method: Method,
    *,
    lrs: Sequence[float],
    starts: np.ndarray,
    steps: int,
    noise: np.ndarray | None = None,
    batch_size: int | None = None,
    seed: int = 0,
) -> Batch:
    """Run ``method`` from every start at every learning rate for ``steps`` updates (module docstring).

    ``noise`` holds the samples' noise vectors (None: the exact gradient);
    ``batch_size`` the mini-batch (None: every sample, i.e. the exact
    gradient; 1: online).
    """
    units = len(starts)
    start = torch.as_tensor(np.asarray(starts, dtype=np.float64))
    points = [start.clone().requires_grad_(True) for _ in lrs]
    optimizer = method.build([{"params": [p], "lr": float(lr)} for p, lr in zip(points, lrs, strict=True)])
    xi = torch.as_tensor(noise) if noise is not None else None
    draws = _Draws(xi, batch_size, units, seed) if xi is not None and batch_size else None
    positions = np.empty((steps + 1, len(lrs), units, 2))
    losses = np.empty((steps + 1, len(lrs), units))
    alive = [torch.ones(units, dtype=torch.bool) for _ in lrs]

    def record(t: int) -> None:
        with torch.no_grad():
            for i, p in enumerate(points):
                positions[t, i] = p.numpy()
                losses[t, i] = land(p[:, 0], p[:, 1]).numpy()

    record(0)
    for t in range(1, steps + 1):
        optimizer.zero_grad(set_to_none=False)
        shift = draws.next() if draws is not None else None
        stacked = torch.stack(points)
        values = land(stacked[..., 0], stacked[..., 1])
        if shift is not None:
            values = values + (shift * stacked).sum(dim=-1)
        # nansum: a frozen (diverged) row adds nothing, and its gradient is zero.
        torch.nansum(values).backward()
        optimizer.step()
        with torch.no_grad():
            for i, p in enumerate(points):
                bad = ~torch.isfinite(p).all(dim=1) | (p.abs() > BLOW_UP).any(dim=1)
                newly = bad & alive[i]
                if newly.any():
                    p[newly] = math.nan
                    alive[i] &= ~newly
        record(t)
    return Batch(tuple(float(lr) for lr in lrs), positions, losses)


class _Draws:
    """Per-unit mini-batches: a new permutation of the samples each epoch, from the unit's own generator."""

    def __init__(self, xi: torch.Tensor, batch_size: int, units: int, seed: int) -> None:
        self.xi, self.b, self.units = xi, batch_size, units
        self.n = len(xi)
        self.generator = torch.Generator().manual_seed(_random.derive(seed, "lab-batches"))
        self.order = torch.empty(0, dtype=torch.long)
        self.position = self.n

    def next(self) -> torch.Tensor:
        if self.position >= self.n:
            keys = torch.rand(self.units, self.n, generator=self.generator)
            self.order = torch.argsort(keys, dim=1)
            self.position = 0
        chosen = self.order[:, self.position : self.position + self.b]
        self.position += self.b
        return self.xi[chosen].mean(dim=1)


def batch_key(**spec: object) -> str:
    """A stable key of a batched experiment's specification (what the store files it under)."""
    text = json.dumps(spec, sort_keys=True, default=_jsonable, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: object) -> object:
    if isinstance(value, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
    return repr(value)
