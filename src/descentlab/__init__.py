"""descentlab: gradient descent for deep learning, done right and shown plainly.

- :mod:`descentlab.optim`: SGD (heavy-ball and EMA momentum, Nesterov), Adagrad,
  RMSprop, Adam and AdamW as drop-in ``torch.optim`` replacements, with
  presets that reproduce Keras's and optax's numbers.
"""

from __future__ import annotations

# The one place the version is written: pyproject.toml reads it from here, so an
# installed descentlab and a source tree run without installing report the same.
__version__ = "0.1.0"

__all__ = ["__version__"]
