"""Tiny MNIST-format (IDX) and CIFAR-10-format (pickle) files, written by the tests.

The images are learnable: class k has a bright square at a position that depends
on k, plus noise, so a model trained on them must lower its loss.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def images(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images of ``shape`` (channels first for 3-D) and their labels 0-9."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    x = rng.integers(0, 60, size=(n, *shape), dtype=np.uint8)
    rows, cols = shape[-2], shape[-1]
    for i, k in enumerate(labels):
        r, c = (k // 5) * (rows // 2), (k % 5) * (cols // 5)
        x[i, ..., r : r + rows // 2, c : c + cols // 5] = 230
    return x, labels.astype(np.uint8)


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """``array`` (uint8) in the IDX format, gzipped when ``gz``."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_mnist(
    directory: Path, n_train: int = 200, n_test: int = 50, gz: bool = False, seed: int = 0
) -> Path:
    """The four MNIST files in ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n, offset in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = images(n, (28, 28), seed + offset)
        write_idx(directory / f"{prefix}-images-idx3-ubyte", x, gz)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", y, gz)
    return directory


def write_cifar10(directory: Path, per_batch: int = 40, seed: int = 0) -> Path:
    """``data_batch_1..5`` and ``test_batch`` as CIFAR-10's python version stores them."""
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        x, y = images(per_batch, (3, 32, 32), seed + i)
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in y],
            b"data": x.reshape(per_batch, -1),
            b"filenames": [f"{name}_{j}.png".encode() for j in range(per_batch)],
        }
        # Protocol 2 with bytes keys, like the files written by Python 2.
        (directory / name).write_bytes(pickle.dumps(batch, protocol=2))
    return directory
