r"""Sparse logistic regression whose rare features carry the signal (what Adagrad was made for).

Feature :math:`j` (numbered by frequency rank, 0 the most common) has weight
:math:`p_j \propto (j + 1)^{-s}`, a Zipf law with exponent ``zipf`` :math:`s`;
each sample switches on ``active`` distinct features, drawn with those weights
(binary values). Most features are therefore rare: with the defaults, about
four in five appear in fewer than 1% of the samples; the typical one of those
appears about eight times in the 2,000 training samples, and some never. The
true weights are larger on rare features (:math:`N(0, 3^2)`) than on common
ones (:math:`N(0, 0.5^2)`), and the label is
:math:`y \sim \mathrm{Bernoulli}(\sigma(x^\top w^*))`. A method has to take
large steps on a rare coordinate the few times it sees it, which is what
per-coordinate step sizes (Adagrad) are said to do better than one global
learning rate (Duchi, Hazan and Singer, 2011).

:attr:`SparseLogistic.rare_features` lists the features that appear in fewer
than 1% of samples (by their expected frequency), so the lab can measure
learning on them, e.g. the error of their weights against
:attr:`SparseLogistic.true_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .. import _random
from ._base import Problem, Setting, Splits

RARE = 0.01


class LogisticRegression(torch.nn.Module):
    """A linear model with one logit per sample, initialised at zero (the loss is convex)."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(n_features, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


@dataclass(frozen=True)
class SparseLogistic(Problem):
    """Zipf-distributed sparse features, signal on the rare ones (see the module docstring).

    Options: ``n_train``, ``n_test`` (2,000 each), ``n_features`` (500),
    ``active`` features per sample (8), ``zipf`` exponent (1.1), ``data_seed``.

    Target: held-out loss 0.47, reached by Adagrad with lr 0.5, mini-batches of
    32, 10 epochs (0.44). The loss of the true weights, :attr:`bayes_loss`, is
    0.30 with the defaults.
    """

    n_train: int = 2000
    n_test: int = 2000
    n_features: int = 500
    active: int = 8
    zipf: float = 1.1
    data_seed: int = 0
    classification: ClassVar[bool] = True
    name: ClassVar[str] = "sparse-logreg"  # type: ignore[misc]
    summary: ClassVar[str] = (
        "logistic regression on sparse Zipf-distributed features; rare features carry the signal"  # type: ignore[misc]
    )
    target_loss: ClassVar[float] = 0.47  # type: ignore[misc]
    default: ClassVar[Setting] = Setting("adagrad", {"lr": 0.5}, "mini-batch", batch_size=32, epochs=10)  # type: ignore[misc]

    def __post_init__(self) -> None:
        for option in ("n_train", "n_test", "n_features", "active"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{self.name}: {option} must be a positive integer; received {option}={value!r}"
                )
        if self.active > self.n_features:
            raise ValueError(
                f"{self.name}: active must be at most n_features; received active={self.active}, "
                f"n_features={self.n_features}"
            )
        if not isinstance(self.zipf, int | float) or not 0 <= self.zipf < float("inf"):
            raise ValueError(f"{self.name}: zipf must be a finite number >= 0; received zipf={self.zipf!r}")

    @property
    def feature_frequency(self) -> torch.Tensor:
        """The expected fraction of samples in which each feature appears (float64)."""
        return self._drawn()["frequency"]

    @property
    def rare_features(self) -> torch.Tensor:
        """Indices of the features expected in fewer than 1% of samples."""
        return torch.nonzero(self.feature_frequency < RARE).squeeze(-1)

    @property
    def true_weights(self) -> torch.Tensor:
        """The weights :math:`w^*` that generated the labels (float32)."""
        return self._drawn()["weights"]

    @property
    def bayes_loss(self) -> float:
        """The held-out loss of the true weights: what no model can beat on average."""
        x, y = self.splits().test
        logits = x @ self.true_weights
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, y))

    def loss(self, output: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(output, targets[0])

    def _drawn(self) -> dict[str, torch.Tensor]:
        cached = self.__dict__.get("_cached_draw")
        if cached is not None:
            return cached
        rng = _random.numpy_generator(self.data_seed, "sparse-logreg")
        d = self.n_features
        p = 1.0 / np.arange(1, d + 1) ** self.zipf
        p /= p.sum()
        rare = self._frequency(p) < RARE
        weights = np.where(rare, rng.normal(0, 3.0, d), rng.normal(0, 0.5, d))
        samples = []
        for n in (self.n_train, self.n_test):
            # `active` distinct features per sample, drawn with probabilities p:
            # the top-k of log p plus Gumbel noise (a vectorised draw without replacement).
            keys = np.log(p) + rng.gumbel(size=(n, d))
            chosen = np.argpartition(-keys, self.active - 1, axis=1)[:, : self.active]
            x = np.zeros((n, d), dtype=np.float32)
            np.put_along_axis(x, chosen, 1.0, axis=1)
            y = (rng.random(n) < 1 / (1 + np.exp(-(x @ weights)))).astype(np.float32)
            samples.append((torch.from_numpy(x), torch.from_numpy(y)))
        cached = {
            "frequency": torch.from_numpy(self._frequency(p)),
            "weights": torch.tensor(weights, dtype=torch.float32),
            "train": samples[0],
            "test": samples[1],
        }
        object.__setattr__(self, "_cached_draw", cached)
        return cached

    def _frequency(self, p: np.ndarray) -> np.ndarray:
        # P(feature j among `active` draws without replacement) ~ 1 - (1 - p_j)^active,
        # exact for rare features, which are the ones this is used to pick.
        return 1 - (1 - p) ** self.active

    def _splits(self) -> Splits:
        drawn = self._drawn()
        return Splits(train=drawn["train"], test=drawn["test"])

    def _model(self) -> torch.nn.Module:
        return LogisticRegression(self.n_features)
