"""Optimizers.  Each owns a native in-place update kernel."""
from __future__ import annotations

from typing import Union

import numpy as np

from ._native.optim import SGDUpdater


class Optimizer:
    """Base class: `native(dtype)` gives the native updater for a network."""

    def __init__(self, learning_rate: float):
        if not np.isfinite(learning_rate) or learning_rate <= 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be a positive "
                             f"number, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)

    def build(self, params: list, dtype) -> None:
        """Create per-parameter state for these arrays."""
        self._updater = self.native(dtype, params)

    def native(self, dtype, params: list):
        raise NotImplementedError

    @property
    def updater(self):
        return self._updater

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


class SGD(Optimizer):
    """Plain stochastic gradient descent: param -= learning_rate * grad."""

    def __init__(self, learning_rate: float = 0.01):
        super().__init__(learning_rate)

    def native(self, dtype, params: list):
        return SGDUpdater(np.dtype(dtype))


_BY_NAME = {"sgd": SGD}


def get(identifier: Union[str, Optimizer]) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; choose one of {sorted(_BY_NAME)} "
                     f"or pass an Optimizer")
