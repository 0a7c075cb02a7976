"""Local random generators derived from one seed; the caller's global generators are never touched.

A run needs several independent random streams (model initialisation, data
order in each epoch, generated data, dropout). Each is derived from the run's
seed and a name through NumPy's ``SeedSequence``, so adding a stream never
shifts another, and nothing reads or reseeds ``torch``'s, NumPy's or Python's
global generators: results do not depend on what ran before, and the caller's
own random sequence is the same whether or not descentlab ran in between.
"""

from __future__ import annotations

import contextlib
import random
import zlib
from collections.abc import Iterator

import numpy as np
import torch


def derive(seed: int, *path: str | int) -> int:
    """A 63-bit seed for the stream named ``path`` under ``seed`` (stable across runs and versions).

    >>> derive(0, "order", 1) == derive(0, "order", 1) != derive(0, "order", 2)
    True
    """
    words = [int(seed)] + [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in path]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def torch_generator(seed: int, *path: str | int) -> torch.Generator:
    """A CPU ``torch.Generator`` for the stream ``path`` under ``seed``."""
    return torch.Generator().manual_seed(derive(seed, *path))


def numpy_generator(seed: int, *path: str | int) -> np.random.Generator:
    """A NumPy ``Generator`` for the stream ``path`` under ``seed``."""
    return np.random.default_rng(derive(seed, *path))


@contextlib.contextmanager
def torch_global_seeded(seed: int, *path: str | int) -> Iterator[None]:
    """Run the block with torch's global CPU generator seeded locally; restore the caller's after.

    For code that draws from the global generator and cannot be given one
    (``nn.Linear``'s initialisation, dropout).
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(derive(seed, *path))
        yield


@contextlib.contextmanager
def global_state_preserved() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's global generators after the block.

    For third-party code that reseeds them (``mnist1d.make_dataset`` calls
    ``random.seed`` and ``np.random.seed``).
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.random.set_rng_state(torch_state)
