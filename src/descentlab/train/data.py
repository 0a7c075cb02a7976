"""Data as the training loop sees it: finite tables taken by index, and streams.

A *batch* is a tuple of tensors with a leading batch dimension. The model is
called on its first tensor and the loss on the model's output and the rest:
``loss(model(batch[0]), *batch[1:])``, the usual ``(inputs, targets)`` pair
being the common case. A loss must return the mean over the batch; the
full-batch regime and :func:`evaluate` weight chunk means by chunk sizes to
get exact means over a data set.

Finite data (a tuple of tensors sharing their first dimension, a
``TensorDataset``, or any map-style dataset with ``__len__`` and
``__getitem__``) works in every regime. Any other iterable is a stream of
samples (each a tensor or a tuple of tensors, without batch dimension) and
works in the online regime.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from .. import _random

Batch = tuple[torch.Tensor, ...]
Loss = Callable[..., torch.Tensor]


class Table:
    """A finite data set whose samples can be taken by index, in batches.

    >>> table = Table((torch.arange(6.0), torch.arange(6)))
    >>> len(table), table.take(torch.tensor([4, 1]))[1].tolist()
    (6, [4, 1])
    """

    def __init__(self, data: Any) -> None:
        self._dataset = None
        if isinstance(data, torch.utils.data.TensorDataset):
            data = data.tensors
        if isinstance(data, torch.Tensor):
            data = (data,)
        if isinstance(data, list | tuple) and data and all(isinstance(t, torch.Tensor) for t in data):
            sizes = {t.shape[0] if t.dim() else None for t in data}
            if len(sizes) != 1 or None in sizes:
                shapes = ", ".join(str(tuple(t.shape)) for t in data)
                raise ValueError(
                    f"the tensors of a data set must share their first dimension; received {shapes}"
                )
            self.tensors: Batch | None = tuple(data)
            self._length = int(data[0].shape[0])
        elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
            self.tensors = None
            self._dataset = data
            self._length = len(data)
        else:
            raise TypeError(
                "a finite data set must be a tuple of tensors, a TensorDataset, or a map-style "
                f"dataset (with __len__ and __getitem__); received {type(data).__name__}"
            )
        if self._length == 0:
            raise ValueError("the data set is empty")

    def __len__(self) -> int:
        return self._length

    def take(self, indices: torch.Tensor) -> Batch:
        """The batch of the samples at ``indices`` (a 1-D integer tensor)."""
        if self.tensors is not None:
            return tuple(t[indices] for t in self.tensors)
        samples = [self._dataset[int(i)] for i in indices]  # type: ignore[index]
        return as_batch(torch.utils.data.default_collate(samples), batched=True)

    def slice(self, start: int, stop: int) -> Batch:
        """The batch of samples ``start`` to ``stop - 1`` (views where possible)."""
        if self.tensors is not None:
            return tuple(t[start:stop] for t in self.tensors)
        return self.take(torch.arange(start, stop))


def as_table(data: Any) -> Table | None:
    """``data`` as a :class:`Table`, or None if it is a stream (an iterable without length)."""
    if data is None:
        return None
    if isinstance(data, torch.Tensor | torch.utils.data.TensorDataset | list | tuple) or (
        hasattr(data, "__getitem__") and hasattr(data, "__len__")
    ):
        return Table(data)
    if isinstance(data, Iterable):
        return None
    raise TypeError(
        f"training data must be a data set or an iterable of samples; received {type(data).__name__}"
    )


def as_batch(item: Any, batched: bool = False) -> Batch:
    """A sample (or, with ``batched``, a collated batch) as a tuple of tensors with a batch dimension."""
    parts = tuple(item) if isinstance(item, list | tuple) else (item,)
    tensors = tuple(torch.as_tensor(p) for p in parts)
    return tensors if batched else tuple(t.unsqueeze(0) for t in tensors)


def order(n: int, seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    """The order of the ``n`` samples in pass ``epoch``: a permutation drawn for that pass, or 0..n-1."""
    if not shuffle:
        return torch.arange(n)
    return torch.randperm(n, generator=_random.torch_generator(seed, "order", epoch))


class StreamReader:
    """Reads samples from a stream and knows how many it has read, so a resumed run can skip them.

    A stream with ``state_dict()`` and ``load_state_dict()`` (such as
    :class:`GeneratedStream`) is restored from its state; any other iterable
    is read again from its start and the samples already used are skipped,
    so it must yield the same samples each time it is iterated from the start.
    """

    def __init__(self, stream: Iterable[Any]) -> None:
        self.stream = stream
        self.consumed = 0
        self._iterator: Iterator[Any] | None = None

    def restore(self, consumed: int, state: Any) -> None:
        """Continue after ``consumed`` samples (from ``state`` where the stream saved one)."""
        if state is not None and hasattr(self.stream, "load_state_dict"):
            self.stream.load_state_dict(state)
            self._iterator = iter(self.stream)
        else:
            self._iterator = iter(self.stream)
            skipped = sum(1 for _ in itertools.islice(self._iterator, consumed))
            if skipped < consumed:
                raise ValueError(
                    f"cannot resume: the stream ended after {skipped} samples, but the checkpoint "
                    f"had used {consumed}; pass the stream from its start"
                )
        self.consumed = consumed

    def state(self) -> Any:
        """The stream's own state, if it can save one (else None: it is replayed and skipped)."""
        return self.stream.state_dict() if hasattr(self.stream, "state_dict") else None

    def next(self) -> Batch | None:
        """The next sample as a batch of one, or None when the stream has ended."""
        if self._iterator is None:
            self._iterator = iter(self.stream)
        try:
            item = next(self._iterator)
        except StopIteration:
            return None
        self.consumed += 1
        return as_batch(item)


class GeneratedStream:
    """An unbounded, resumable stream: ``sample(generator)`` draws each sample.

    Its state (the generator's and the count) goes into checkpoints, so a run
    on it resumes exactly.

    >>> stream = GeneratedStream(lambda g: torch.randn(2, generator=g), seed=0)
    >>> first = next(iter(stream))
    >>> bool(torch.equal(first, next(iter(GeneratedStream(lambda g: torch.randn(2, generator=g), seed=0)))))
    True
    """

    def __init__(self, sample: Callable[[torch.Generator], Any], seed: int) -> None:
        self.sample = sample
        self.generator = _random.torch_generator(seed, "stream")
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        while True:
            self.count += 1
            yield self.sample(self.generator)

    def state_dict(self) -> dict[str, Any]:
        """The generator's state and the number of samples drawn."""
        return {"generator": self.generator.get_state(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`."""
        self.generator.set_state(state["generator"])
        self.count = int(state["count"])


def model_loss(model: torch.nn.Module, loss: Loss, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's output on ``batch`` and the loss on it (the contract described above)."""
    output = model(batch[0])
    return output, loss(output, *batch[1:])


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The fraction of correct predictions: argmax of class scores, or the sign of one logit.

    >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])).item()
    0.5
    >>> accuracy(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 1.0])).item()
    0.5
    """
    scores = output.dim() == target.dim() + 1
    predicted = output.argmax(dim=-1) if scores else (output > 0).to(target.dtype)
    return (predicted == target).to(torch.float64).mean()


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: Any,
    loss: Loss,
    accuracy: Callable[..., torch.Tensor] | None = None,
    chunk_size: int = 1024,
) -> tuple[float, float | None]:
    """The mean loss (and accuracy) of ``model`` over a finite data set, in chunks, in eval mode.

    Chunk means are weighted by chunk sizes, so the result is the mean over the
    data set whatever ``chunk_size`` (up to rounding); the model's training mode
    is restored afterwards.
    """
    table = data if isinstance(data, Table) else Table(data)
    n = len(table)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        total, correct = 0.0, 0.0
        for start in range(0, n, chunk_size):
            batch = table.slice(start, min(start + chunk_size, n))
            if device.type != "cpu":  # pragma: no cover - no GPU in CI
                batch = tuple(t.to(device, non_blocking=True) for t in batch)
            share = batch[0].shape[0] / n
            output, value = model_loss(model, loss, batch)
            total += float(value) * share
            if accuracy is not None:
                correct += float(accuracy(output, *batch[1:])) * share
    finally:
        model.train(was_training)
    return total, (correct if accuracy is not None else None)
