"""Optimizers.  Each owns a native in-place update kernel."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from ._data import check_positive_float
from ._native.optim import SGDUpdater
from .registry import auto_register


class Optimizer:
    """Base class: `native(dtype)` gives the native updater for a network.

    Saving protocol (issue 5): `get_config()` gives the constructor arguments
    as JSON values; `get_state()` gives the arrays that, with the config,
    determine all future updates (moments, step counters as int64 arrays...);
    `set_state(arrays)` restores them.  State set before `build` is kept and
    applied by `build`, so a loaded network resumes exactly where it stopped.
    """

    def __init__(self, learning_rate: float):
        self.learning_rate = check_positive_float(learning_rate,
                                                  f"{type(self).__name__}: learning_rate")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        auto_register("optimizer", cls)

    def build(self, params: list, dtype) -> None:
        """Create per-parameter state for these arrays."""
        self._updater = self.native(dtype, params)
        pending = getattr(self, "_pending_state", None)
        self._pending_state: Optional[list] = None
        if pending is not None:
            self.load_state(pending)

    # ------------------------------------------------- saving (issue 5)
    def get_config(self) -> dict:
        return {"learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config: dict) -> "Optimizer":
        return cls(**config)

    def get_state(self) -> list:
        """Copies of the state arrays (empty for a stateless optimizer; the
        pending state when set before build)."""
        pending = getattr(self, "_pending_state", None)
        return [a.copy() for a in pending] if pending is not None else []

    def set_state(self, arrays: list) -> None:
        """Restore `get_state()` arrays: now if built, else at `build`."""
        arrays = [np.array(a, copy=True) for a in arrays]
        if getattr(self, "_updater", None) is None:
            self._pending_state = arrays
        else:
            self.load_state(arrays)

    def load_state(self, arrays: list) -> None:
        """Install state arrays into a built optimizer (subclasses with state
        override this and get_state); ValueError on a count/shape mismatch."""
        if arrays:
            raise ValueError(f"{type(self).__name__} keeps no state, received "
                             f"{len(arrays)} arrays")

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
