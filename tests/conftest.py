"""Shared pytest configuration for descentlab's tests."""

import pytest
import torch

# The golden-value generator needs Keras and optax, which are not test
# dependencies; it is a script, not a test module.
collect_ignore = ["golden/generate.py"]


# Training, problem, lab and `descentlab run` tests run torch single-threaded:
# results then do not depend on how busy the machine is, and small models run
# several times faster on two shared cores (with another process on them,
# torch's two threads made an MNIST-1D CNN over 100 times slower). The
# optimizer tests keep both threads for the compiled fast-path kernels.
SINGLE_THREADED = ("train", "problems", "lab", "test_cli_run.py")


@pytest.fixture(autouse=True)
def _one_thread(request):
    if not any(part in SINGLE_THREADED for part in request.node.path.parts):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
