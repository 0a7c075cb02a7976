"""MNIST-1D (Greydanus, 2020), generated locally by the ``mnist1d`` package, with an MLP and a 1-D CNN.

MNIST-1D turns ten 1-D digit templates into 40-point signals by padding,
scaling, translating, adding correlated and white noise and shearing. It is
generated here with ``mnist1d``'s own ``make_dataset``, never downloaded (its
``get_dataset`` would fetch a file). ``make_dataset`` reseeds Python's and
NumPy's global generators, so it runs inside
:func:`descentlab._random.global_state_preserved` and the caller's state is
restored. A data set is generated once per process and options.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

from .. import _random
from ._base import Problem, Setting, Splits
from .digits import mlp


@functools.lru_cache(maxsize=4)
def generate(n_samples: int, seed: int) -> dict[str, np.ndarray]:
    """MNIST-1D with ``n_samples`` signals (80% for training) from ``mnist1d``'s generator.

    All of mnist1d's other arguments are its defaults (40-point signals).
    """
    # Imported here: mnist1d imports matplotlib and scipy, and only this problem needs them.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = n_samples
    args.seed = seed
    with _random.global_state_preserved():
        data = make_dataset(args)
    return {key: np.asarray(data[key]) for key in ("x", "y", "x_test", "y_test")}


class ConvNet1d(torch.nn.Module):
    """A small 1-D CNN for 40-point signals: three strided convolutions and a linear layer."""

    def __init__(self, channels: int = 16, length: int = 40, classes: int = 10) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv1d(1, channels, 5, stride=2, padding=2),
            torch.nn.ReLU(),
            torch.nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            torch.nn.ReLU(),
        )
        self.head = torch.nn.Linear(channels * ((length + 7) // 8), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1)).flatten(1))


@dataclass(frozen=True)
class MNIST1D(Problem):
    """MNIST-1D classification with an MLP (``architecture="mlp"``, 40-100-100-10) or a 1-D CNN.

    Options: ``n_samples`` generated (4,000: 3,200 to train, 800 held out;
    mnist1d's own default is 5,000), ``data_seed`` (mnist1d's default, 42).

    Targets (held-out cross-entropy): the MLP reaches 1.25 (1.18, about 55%
    accuracy) with Adam, lr 0.002, mini-batches of 32, 8 epochs; it overfits
    after about 10 epochs. The CNN reaches 0.8 (0.69, about 74%) with Adam, lr
    0.003, mini-batches of 32, 15 epochs, and keeps improving with longer
    training.
    """

    architecture: Literal["mlp", "cnn"] = "mlp"
    n_samples: int = 4000
    data_seed: int = 42
    classification: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.architecture not in ("mlp", "cnn"):
            raise ValueError(f"mnist1d: architecture must be 'mlp' or 'cnn'; received {self.architecture!r}")
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, int) or self.n_samples < 20:
            raise ValueError(
                f"{self.name}: n_samples must be an integer >= 20; received n_samples={self.n_samples!r}"
            )

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"mnist1d-{self.architecture}"

    @property
    def summary(self) -> str:  # type: ignore[override]
        model = "MLP" if self.architecture == "mlp" else "small 1-D CNN"
        return f"{model} on MNIST-1D, generated locally by the mnist1d package (40-point signals, 10 classes)"

    @property
    def target_loss(self) -> float:  # type: ignore[override]
        return 1.25 if self.architecture == "mlp" else 0.8

    @property
    def default(self) -> Setting:  # type: ignore[override]
        if self.architecture == "mlp":
            return Setting("adam", {"lr": 0.002}, "mini-batch", batch_size=32, epochs=8)
        return Setting("adam", {"lr": 0.003}, "mini-batch", batch_size=32, epochs=15)

    def loss(self, output: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(output, targets[0])

    def _splits(self) -> Splits:
        data = generate(self.n_samples, self.data_seed)

        def pair(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)

        return Splits(train=pair(data["x"], data["y"]), test=pair(data["x_test"], data["y_test"]))

    def _model(self) -> torch.nn.Module:
        return mlp(40, (100, 100), 10) if self.architecture == "mlp" else ConvNet1d()
