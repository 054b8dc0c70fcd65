"""Batch normalization."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .._native.batchnorm import BatchNormOp
from .base import NativeLayer, Shape


class BatchNormalization(NativeLayer):
    """Normalizes over the last axis (the channels of NHWC images, the
    features of 2-D inputs): y = gamma * (x - mean) / sqrt(var + epsilon) + beta.

    Training uses the batch mean and (biased) variance and updates the moving
    statistics: moving = momentum * moving + (1 - momentum) * batch; inference
    uses the moving statistics.  `params` are [gamma, beta]; `state` holds
    [moving_mean, moving_var], which are saved with the model but not trained.

    Parameters
    ----------
    momentum : float, default 0.99
        The weight of the old moving statistics, in [0, 1].
    epsilon : float, default 1e-3
        Added to the variance, positive.
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If momentum or epsilon is out of range.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Dense(4), nncore.BatchNormalization()],
    ...                      input_shape=(3,), seed=0)
    >>> [w.shape for w in net.layers[1].get_weights()]    # gamma, beta, moving mean, var
    [(4,), (4,), (4,), (4,)]
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3,
                 name: Optional[str] = None):
        super().__init__(name)
        if not (isinstance(momentum, (int, float, np.floating)) and 0 <= momentum <= 1):
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1], got {momentum!r}")
        if not (isinstance(epsilon, (int, float, np.floating)) and np.isfinite(epsilon)
                and epsilon > 0):
            raise ValueError(f"{type(self).__name__}: epsilon must be a positive number, "
                             f"got {epsilon!r}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.state: List[np.ndarray] = []

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) == 0:
            raise ValueError(f"{type(self).__name__}: expected input of shape "
                             f"(None, ..., channels), received a scalar per sample")
        return input_shape

    def build(self, input_shape: Sequence[int]) -> None:
        self.compute_output_shape(tuple(input_shape))
        channels = int(input_shape[-1])
        self.gamma = np.ones(channels, self.dtype)
        self.beta = np.zeros(channels, self.dtype)
        self.moving_mean = np.zeros(channels, self.dtype)
        self.moving_var = np.ones(channels, self.dtype)
        self.params = [self.gamma, self.beta]
        self.grads = [np.zeros(p.shape, p.dtype) for p in self.params]   # committed when used
        self.state = [self.moving_mean, self.moving_var]
        super().build(input_shape)

    def get_config(self) -> dict:
        return {"momentum": self.momentum, "epsilon": self.epsilon, "name": self.name}

    def weight_shapes(self, input_shape: Shape):
        self.compute_output_shape(tuple(input_shape))
        return [(int(input_shape[-1]),)] * 4

    def make_ops(self) -> list:
        size = int(np.prod(self._built_input_shape(), dtype=np.int64))
        return [BatchNormOp(size, self.gamma, self.beta, self.grads[0], self.grads[1],
                            self.moving_mean, self.moving_var,
                            self.momentum, self.epsilon)]

    def __repr__(self) -> str:
        return f"BatchNormalization(momentum={self.momentum}, epsilon={self.epsilon})"
