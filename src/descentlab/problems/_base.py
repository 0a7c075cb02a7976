"""What a problem is: data, a model family, a loss, and a documented way to solve it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .. import _random


@dataclass(frozen=True)
class Setting:
    """An optimizer setting documented (and tested) to reach a problem's target loss.

    ``steps``/``epochs`` is the budget; the regime's batch size is used by the
    mini-batch regime only.
    """

    optimizer: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    regime: str = "mini-batch"
    batch_size: int = 32
    steps: int | None = None
    epochs: int | None = None


@dataclass(frozen=True)
class Splits:
    """A problem's training and held-out data: tuples of tensors sharing their first dimension."""

    train: tuple[torch.Tensor, ...]
    test: tuple[torch.Tensor, ...]


class Problem:
    """Base class of the benchmark problems (each a frozen dataclass whose fields are its options).

    A problem is deterministic given its options and the seed passed to
    :meth:`model`: generated data come from generators derived from the
    ``data_seed`` option, the initial model from the seed, and neither reads
    nor changes the caller's global random generators. Data are built on
    first use and kept.

    Subclasses provide ``name``, ``summary``, ``target_loss`` (the held-out
    loss that ``default`` reaches; documented in each class and checked by a
    test), ``default`` (a :class:`Setting`), :meth:`_splits`,
    :meth:`_model` and :meth:`loss`; ``classification`` says whether the
    held-out accuracy is meaningful.
    """

    classification: ClassVar[bool] = False
    name: str
    summary: str
    target_loss: float
    default: Setting

    def splits(self) -> Splits:
        """The training and held-out data (built on the first call)."""
        cached = self.__dict__.get("_cached_splits")
        if cached is None:
            cached = self._splits()
            # Frozen dataclasses refuse setattr; the cache is not an option, so bypass it.
            object.__setattr__(self, "_cached_splits", cached)
        return cached

    def model(self, seed: int = 0) -> torch.nn.Module:
        """A freshly initialised model; the same ``seed`` gives the same weights.

        Initialisation draws from a copy of torch's global generator seeded
        from ``seed``; the caller's generator is left as it was.
        """
        with _random.torch_global_seeded(seed, "init"):
            return self._model()

    def loss(self, output: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        """The mean loss over a batch, given the model's output and the batch's other tensors."""
        raise NotImplementedError

    def _splits(self) -> Splits:
        raise NotImplementedError

    def _model(self) -> torch.nn.Module:
        raise NotImplementedError


def mean_of_output(output: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:
    """The loss of problems whose model returns per-sample losses itself (surfaces, quadratics)."""
    return output.mean()
