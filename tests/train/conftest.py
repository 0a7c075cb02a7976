"""Training tests run single-threaded: results then do not depend on how busy the machine is,
and small models run several times faster on two shared cores."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
