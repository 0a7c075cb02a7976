"""descentlab: gradient descent for deep learning, done right and shown plainly.

- :mod:`descentlab.optim`: SGD (heavy-ball and EMA momentum, Nesterov), Adagrad,
  RMSprop, Adam and AdamW as drop-in ``torch.optim`` replacements, with
  presets that reproduce Keras's and optax's numbers.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("descentlab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
