"""Dropout."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .._native.dropout import DropoutOp
from .._native.data import new_shuffle_state
from .base import NativeLayer


class Dropout(NativeLayer):
    """Inverted dropout: in training each value is zeroed with probability
    `rate` and the others are scaled by 1 / (1 - rate); at inference it is the
    identity.  The mask comes from a generator seeded from the network's
    seed when the layer is built, so seeded runs are reproducible.

    Parameters
    ----------
    rate : float
        The probability of zeroing a value, in [0, 1).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If `rate` is not in [0, 1).

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Dropout(0.5)], input_shape=(4,), seed=0)
    >>> net.predict(np.ones((1, 4), dtype=np.float32))     # identity at inference
    array([[1., 1., 1., 1.]], dtype=float32)
    """

    def __init__(self, rate: float, name: Optional[str] = None):
        super().__init__(name)
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise TypeError(f"{type(self).__name__}: rate must be a number, got {rate!r}") from None
        if not 0 <= rate < 1:
            raise ValueError(f"{type(self).__name__}: rate must be in [0, 1), got {rate!r}")
        self.rate = rate

    def make_ops(self) -> list:
        self.rng_state = new_shuffle_state(int(self.rng.integers(2**63)))
        self.state = [self.rng_state]     # the mask generator: saved with the model
        size = int(np.prod(self._built_input_shape(), dtype=np.int64))
        return [DropoutOp(self.dtype, size, self.rate, self.rng_state)]

    def get_config(self) -> dict:
        return {"rate": self.rate, "name": self.name}

    def weight_shapes(self, input_shape):
        return [(4,)]

    def __repr__(self) -> str:
        return f"Dropout({self.rate})"
