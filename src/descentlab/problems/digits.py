"""An MLP on scikit-learn's bundled 8x8 handwritten digits (no download: the data ship with it)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .. import _random
from ._base import Problem, Setting, Splits

#: The samples in scikit-learn's digits (``load_digits``), split into training and held-out sets.
SAMPLES = 1797


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    # Imported here: scikit-learn takes about a second to import, and only this problem needs it.
    # Its import draws from Python's global generator (it imports rich): the caller's is kept.
    with _random.global_state_preserved():
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
    return x.astype(np.float32) / 16.0, y.astype(np.int64)


def mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> torch.nn.Sequential:
    """A ReLU multi-layer perceptron (PyTorch's default initialisation)."""
    layers: list[torch.nn.Module] = []
    for width in hidden:
        layers += [torch.nn.Linear(inputs, width), torch.nn.ReLU()]
        inputs = width
    layers.append(torch.nn.Linear(inputs, outputs))
    return torch.nn.Sequential(*layers)


@dataclass(frozen=True)
class Digits(Problem):
    """A 64-64-10 MLP classifying scikit-learn's 1,797 8x8 digits (pixels scaled to [0, 1]).

    Options: ``test_fraction`` held out (0.2, a fixed split drawn from
    ``data_seed``), ``hidden`` width (64).

    Target: held-out cross-entropy 0.15 (about 96% accuracy), reached by Adam
    with lr 0.003, mini-batches of 32, 15 epochs.
    """

    test_fraction: float = 0.2
    hidden: int = 64
    data_seed: int = 0
    classification: ClassVar[bool] = True
    name: ClassVar[str] = "digits-mlp"  # type: ignore[misc]
    summary: ClassVar[str] = "MLP on scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)"  # type: ignore[misc]
    target_loss: ClassVar[float] = 0.15  # type: ignore[misc]
    default: ClassVar[Setting] = Setting("adam", {"lr": 0.003}, "mini-batch", batch_size=32, epochs=15)  # type: ignore[misc]

    def __post_init__(self) -> None:
        if (
            isinstance(self.test_fraction, bool)
            or not isinstance(self.test_fraction, float | int)
            or not 0 < self.test_fraction < 1  # also refuses nan
            or not 1 <= round(self.test_fraction * SAMPLES) <= SAMPLES - 1
        ):
            raise ValueError(
                f"{self.name}: test_fraction must leave at least one of the {SAMPLES} samples on each "
                f"side (about {1 / SAMPLES:.4f} to {1 - 1 / SAMPLES:.4f}); "
                f"received test_fraction={self.test_fraction!r}"
            )
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(
                f"{self.name}: hidden must be a positive integer; received hidden={self.hidden!r}"
            )

    def loss(self, output: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(output, targets[0])

    def _splits(self) -> Splits:
        x, y = _load_digits()
        permutation = _random.numpy_generator(self.data_seed, "digits-split").permutation(len(y))
        n_test = round(self.test_fraction * len(y))
        test, train = permutation[:n_test], permutation[n_test:]
        return Splits(
            train=(torch.from_numpy(x[train]), torch.from_numpy(y[train])),
            test=(torch.from_numpy(x[test]), torch.from_numpy(y[test])),
        )

    def _model(self) -> torch.nn.Module:
        return mlp(64, (self.hidden,), 10)
