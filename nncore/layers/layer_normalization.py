"""Layer normalization."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .._native.layernorm import LayerNormOp
from .base import NativeLayer, Shape


class LayerNormalization(NativeLayer):
    """Normalizes each sample over its last axis, position by position:
    y = gamma * (x - mean) / sqrt(var + epsilon) + beta, with the mean and
    (biased) variance of the last axis; gamma and beta have the size of that
    axis.  The same in training and inference (no moving statistics).

    Parameters
    ----------
    epsilon : float, default 1e-3
        Added to the variance, positive.
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If epsilon is not a positive number.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.LayerNormalization()], input_shape=(2, 4))
    >>> y = net.predict(np.arange(8, dtype=np.float32).reshape(1, 2, 4))
    >>> np.round(y.mean(axis=-1), 6) + 0
    array([[0., 0.]], dtype=float32)
    """

    def __init__(self, epsilon: float = 1e-3, name: Optional[str] = None):
        super().__init__(name)
        if not (isinstance(epsilon, (int, float, np.floating)) and np.isfinite(epsilon)
                and epsilon > 0):
            raise ValueError(f"{type(self).__name__}: epsilon must be a positive number, "
                             f"got {epsilon!r}")
        self.epsilon = float(epsilon)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) == 0:
            raise ValueError(f"{type(self).__name__}: expected input of shape "
                             f"(None, ..., features), received a scalar per sample")
        return input_shape

    def build(self, input_shape: Sequence[int]) -> None:
        self.compute_output_shape(tuple(input_shape))
        features = int(input_shape[-1])
        self.gamma = np.ones(features, self.dtype)
        self.beta = np.zeros(features, self.dtype)
        self.params = [self.gamma, self.beta]
        self.grads = [np.zeros_like(p) for p in self.params]
        super().build(input_shape)

    def make_ops(self) -> list:
        size = int(np.prod(self._built_input_shape(), dtype=np.int64))
        return [LayerNormOp(size, self.gamma, self.beta, self.grads[0], self.grads[1],
                            self.epsilon)]

    def get_config(self) -> dict:
        return {"epsilon": self.epsilon, "name": self.name}

    def weight_shapes(self, input_shape: Shape):
        self.compute_output_shape(tuple(input_shape))
        return [(int(input_shape[-1]),)] * 2

    def __repr__(self) -> str:
        return f"LayerNormalization(epsilon={self.epsilon})"
