"""Weight regularizers: penalties on a layer's kernel or bias added to the
training loss, `kernel_regularizer=` / `bias_regularizer=` of Dense and
Conv2D.  Give an object (`L2(1e-4)`), a name ('l1', 'l2', 'l1_l2', with
Keras's default factor 0.01) or a config dict.  The penalty's gradient is
added natively to the parameter's gradient after backward, and its value to
each batch's loss (so the loss fit reports includes it, as in Keras)."""
from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np

from .errors import unknown_name

__all__ = ["Regularizer", "L1", "L2", "L1L2", "get"]


def _factor(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


class Regularizer:
    """``l1 * sum(abs(w)) + l2 * sum(w**2)`` on one parameter array."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = _factor(l1, f"{type(self).__name__}: l1")
        self.l2 = _factor(l2, f"{type(self).__name__}: l2")

    def __call__(self, w: np.ndarray) -> float:
        """The penalty of `w` (computed in NumPy, float64)."""
        w = np.asarray(w, np.float64)
        return float(self.l1 * np.abs(w).sum() + self.l2 * np.square(w).sum())

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}

    def __eq__(self, other) -> bool:
        return isinstance(other, Regularizer) and (self.l1, self.l2) == (other.l1, other.l2)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(l1={self.l1}, l2={self.l2})"


class L1(Regularizer):
    """``l1 * sum(abs(w))``."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(w**2)``."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


class L1L2(Regularizer):
    """``l1 * sum(abs(w)) + l2 * sum(w**2)`` (both 0 by default, as in Keras)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        super().__init__(l1=l1, l2=l2)


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2}
_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}


def get(spec, owner: str = "layer") -> Optional[Regularizer]:
    """A Regularizer from None, an object, a name or {'class_name', 'config'}."""
    if spec is None or isinstance(spec, Regularizer):
        return spec
    if isinstance(spec, str):
        cls = _BY_NAME.get(spec.lower())
        if cls is None:
            raise ValueError(f"{owner}: " + unknown_name("regularizer", spec, _BY_NAME))
        return cls()
    if isinstance(spec, dict) and set(spec) == {"class_name", "config"}:
        cls = _CLASSES.get(spec["class_name"])
        if cls is None or not isinstance(spec["config"], dict):
            raise ValueError(f"{owner}: unknown regularizer config {spec!r}")
        try:
            return cls(**spec["config"])
        except TypeError as error:
            raise ValueError(f"{owner}: bad regularizer config {spec!r}: {error}") from None
    raise TypeError(f"{owner}: a regularizer is None, a name ('l1', 'l2', 'l1_l2') or "
                    f"an L1/L2/L1L2 object, got {spec!r}")


def config_of(regularizer: Optional[Regularizer]) -> Union[dict, None]:
    """The JSON form `get` reads back."""
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


def penalty_ops(layer, pairs) -> list:
    """Native PenaltyOps of (regularizer, param, grad) triples, skipping
    missing regularizers and parameters and zero penalties."""
    from ._native.regularize import PenaltyOp
    return [PenaltyOp(param, grad, reg.l1, reg.l2) for reg, param, grad in pairs
            if reg is not None and param is not None and (reg.l1 or reg.l2)]
