"""MNIST, Fashion-MNIST and CIFAR-10 read from a local directory, in their standard formats.

Nothing is downloaded: these problems read files a user already has.

- **MNIST, Fashion-MNIST**: the four IDX files ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
  ``t10k-labels-idx1-ubyte``, each possibly gzipped (``.gz``), directly in the
  directory or where torchvision puts them (``MNIST/raw``, ``FashionMNIST/raw``).
- **CIFAR-10**: the "python version", ``data_batch_1`` to ``data_batch_5`` and
  ``test_batch``, in the directory or in its ``cifar-10-batches-py``. These are
  pickles; they are read with an unpickler that accepts only NumPy arrays and
  plain values, so a tampered file cannot run code.

Images stay uint8 in memory (a quarter of float32's size); the models' first
layer scales and normalises them.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from ._base import Problem, Setting, Splits
from .digits import mlp

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
_SUBDIRS = {"mnist": "MNIST/raw", "fashion-mnist": "FashionMNIST/raw", "cifar10": "cifar-10-batches-py"}
_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def read_idx(path: str | Path) -> np.ndarray:
    """An array from an IDX file (the MNIST format), gzipped or not.

    Raises ValueError naming the file if its header or size is not IDX.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{str(path)!r} is not a readable gzip file ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{str(path)!r} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{str(path)!r} is truncated: its header names {ndim} dimensions")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize  # Python ints: a huge header cannot overflow
    if len(raw) != expected:
        raise ValueError(
            f"{str(path)!r} has {len(raw)} bytes; its header (shape {shape}, {dtype}) says {expected}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(data_dir: Path, dataset: str, names: tuple[str, ...], gz: bool) -> dict[str, Path]:
    """The path of each expected file, looked for in ``data_dir`` and its usual subdirectory."""
    if data_dir.is_file():
        raise NotADirectoryError(
            f"{_TITLES[dataset]}: data directory {str(data_dir)!r} is a file, not a folder"
        )
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{_TITLES[dataset]}: data directory {str(data_dir)!r} does not exist")
    places = [data_dir, data_dir / _SUBDIRS[dataset]]
    for place in places:
        found = {}
        for name in names:
            for candidate in (place / name, place / f"{name}.gz") if gz else (place / name,):
                if candidate.is_file():
                    found[name] = candidate
                    break
        if len(found) == len(names):
            return found
        if found:
            missing = [n for n in names if n not in found]
            raise FileNotFoundError(
                f"{_TITLES[dataset]}: {str(place)!r} lacks {', '.join(missing)}" + (" (or .gz)" if gz else "")
            )
    expected = ", ".join(names) + (" (each optionally .gz)" if gz else "")
    raise FileNotFoundError(
        f"{_TITLES[dataset]}: no data in {str(data_dir)!r}: expected {expected} in "
        f"{str(places[0])!r} or {str(places[1])!r}"
    )


def read_mnist(data_dir: str | Path, dataset: Literal["mnist", "fashion-mnist"] = "mnist") -> Splits:
    """MNIST or Fashion-MNIST (same format) from IDX files: uint8 images (N, 28, 28), int64 labels."""
    files = _find(Path(data_dir), dataset, MNIST_FILES, gz=True)
    parts = []
    for images_name, labels_name in (MNIST_FILES[:2], MNIST_FILES[2:]):
        images, labels = read_idx(files[images_name]), read_idx(files[labels_name])
        if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1:] != (28, 28):
            raise ValueError(
                f"{str(files[images_name])!r}: expected uint8 images of 28 x 28 pixels (N, 28, 28); "
                f"found {images.dtype} {images.shape}"
            )
        if len(images) == 0:
            raise ValueError(f"{str(files[images_name])!r}: holds no images")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"{str(files[labels_name])!r}: expected {len(images)} labels, one per image; "
                f"found shape {labels.shape}"
            )
        _check_labels(files[labels_name], labels)
        parts.append((torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))))
    return Splits(train=parts[0], test=parts[1])


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds NumPy arrays and plain values and refuses anything else."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles store bytes
        ("__builtin__", "bytes"),  # and an empty bytes value
        ("builtins", "bytes"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: CIFAR-10 batches hold arrays only"
            )
        if module.startswith("numpy") and module.endswith("multiarray"):
            try:
                from numpy._core import multiarray  # numpy >= 2 (numpy.core warns there)
            except ImportError:  # pragma: no cover - numpy 1
                from numpy.core import multiarray
            return getattr(multiarray, name)
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{str(path)!r} is not a CIFAR-10 batch ({err})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{str(path)!r} is not a CIFAR-10 batch (not a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{str(path)!r} is not a CIFAR-10 batch (no 'data' and 'labels')")
    data = np.asarray(batch["data"])
    try:
        labels = np.asarray(batch["labels"])
        if labels.dtype.kind not in "iuf":
            raise ValueError(f"they are {labels.dtype}")
        if labels.ndim != 1:
            raise ValueError(f"a list of them, one per image; found an array of shape {labels.shape}")
    except ValueError as err:
        raise ValueError(f"{str(path)!r}: the labels must be whole numbers 0 to 9 ({err})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(
            f"{str(path)!r}: expected uint8 data of shape (N, 3072) and N labels; found data "
            f"{data.dtype} {data.shape} and {len(labels)} labels"
        )
    if len(data) == 0:
        raise ValueError(f"{str(path)!r}: holds no images")
    return data.reshape(-1, 3, 32, 32), _check_labels(path, labels)


def _check_labels(path: Path, labels: np.ndarray) -> np.ndarray:
    """``labels`` as int64 if every one is a whole number from 0 to 9; else ValueError naming the file."""
    whole = labels.dtype.kind in "iu" or bool(np.all(np.isfinite(labels) & (labels == np.round(labels))))
    if not whole or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        bad = labels[~np.isin(labels, np.arange(10))][:3].tolist()
        raise ValueError(f"{str(path)!r}: labels must be whole numbers 0 to 9; found {bad}")
    return labels.astype(np.int64)


def read_cifar10(data_dir: str | Path) -> Splits:
    """CIFAR-10 from its python-version batches: uint8 images (N, 3, 32, 32), int64 labels."""
    files = _find(Path(data_dir), "cifar10", CIFAR10_FILES, gz=False)
    train = [_read_cifar_batch(files[f"data_batch_{i}"]) for i in range(1, 6)]
    test = _read_cifar_batch(files["test_batch"])
    return Splits(
        train=(
            torch.from_numpy(np.concatenate([x for x, _ in train])),
            torch.from_numpy(np.concatenate([y for _, y in train])),
        ),
        test=(torch.from_numpy(test[0].copy()), torch.from_numpy(test[1])),
    )


class Standardize(torch.nn.Module):
    """uint8 pixels to floats: ``(x / 255 - mean) / std``, per channel."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        # (channels, 1, 1) broadcasts over (N, channels, rows, columns) and, with one
        # channel, over (N, rows, columns).
        self.register_buffer("mean", torch.tensor(mean).reshape(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std).reshape(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255.0 - self.mean) / self.std


# Published per-channel statistics of the training sets.
_STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


@dataclass(frozen=True)
class LocalImages(Problem):
    """An image classification data set the user keeps locally (see the module docstring).

    ``dataset`` is ``"mnist"`` or ``"fashion-mnist"`` (a 784-128-10 MLP) or
    ``"cifar10"`` (a small CNN: two 3x3 convolutions with max pooling, then a
    linear layer). Options: ``data_dir`` (required), ``limit`` (use only the
    first ``limit`` training images, for quick runs).

    Targets (held-out cross-entropy, with Adam lr 0.001, mini-batches of 64,
    one epoch for MNIST and Fashion-MNIST, two for CIFAR-10): 0.2, 0.55 and
    1.4. These are typical values for these models and are *not* checked by
    the test suite, which has no copy of the data sets; the tests check the
    loaders and that training lowers the loss on small files they write.
    """

    dataset: Literal["mnist", "fashion-mnist", "cifar10"] = "mnist"
    data_dir: str | None = None
    limit: int | None = None
    classification: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.dataset not in _STATS:
            raise ValueError(f"dataset must be one of {', '.join(_STATS)}; received dataset={self.dataset!r}")
        if isinstance(self.data_dir, int) and not isinstance(self.data_dir, bool):
            # a folder named with digits, as `--option data_dir=2024` reads it
            object.__setattr__(self, "data_dir", str(self.data_dir))
        if self.data_dir is not None and not isinstance(self.data_dir, str | os.PathLike):
            raise ValueError(
                f"{self.name}: data_dir must be a folder's path; received data_dir={self.data_dir!r}"
            )
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1
        ):
            raise ValueError(f"{self.name}: limit must be a positive integer; received limit={self.limit!r}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.dataset}-{'cnn' if self.dataset == 'cifar10' else 'mlp'}"

    @property
    def summary(self) -> str:  # type: ignore[override]
        model = "small CNN" if self.dataset == "cifar10" else "MLP"
        return f"{model} on {_TITLES[self.dataset]} read from a local directory (data_dir); never downloaded"

    @property
    def target_loss(self) -> float:  # type: ignore[override]
        return {"mnist": 0.2, "fashion-mnist": 0.55, "cifar10": 1.4}[self.dataset]

    @property
    def default(self) -> Setting:  # type: ignore[override]
        epochs = 2 if self.dataset == "cifar10" else 1
        return Setting("adam", {"lr": 0.001}, "mini-batch", batch_size=64, epochs=epochs)

    def loss(self, output: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(output, targets[0])

    def _splits(self) -> Splits:
        if self.data_dir is None:
            raise ValueError(
                f"{self.name} reads {_TITLES[self.dataset]} from a local directory and downloads nothing: "
                "give data_dir (descentlab run --data-dir DIR)"
            )
        splits = (
            read_cifar10(self.data_dir)
            if self.dataset == "cifar10"
            else read_mnist(self.data_dir, self.dataset)
        )  # type: ignore[arg-type]
        if self.limit is not None:
            splits = Splits(train=tuple(t[: self.limit] for t in splits.train), test=splits.test)
        return splits

    def _model(self) -> torch.nn.Module:
        mean, std = _STATS[self.dataset]
        if self.dataset != "cifar10":
            return torch.nn.Sequential(Standardize(mean, std), torch.nn.Flatten(), mlp(784, (128,), 10))
        return torch.nn.Sequential(
            Standardize(mean, std),
            torch.nn.Conv2d(3, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(32 * 8 * 8, 10),
        )
