"""The fully connected layer `Dense` (nncore.article adds `FCLayer`)."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from .. import initializers
from .._native.activation import ActivationOp
from .._native.dense import DenseOp
from .activation import ActivationSpec, activation_config, fused_activation
from .base import NativeLayer, Shape


class Dense(NativeLayer):
    """y = activation(x @ W + b) on the last axis; W has shape (in, units).

    The input size is taken from the data when the network is built, or fixed
    with `input_size`.  `activation` is an optional activation: a name, or an
    `Activation` layer such as `LeakyReLU(0.2)`.
    """

    def __init__(self, units: int, activation: ActivationSpec = None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", input_size: Optional[int] = None,
                 name: Optional[str] = None):
        super().__init__(name)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"{type(self).__name__}: units must be a positive integer, got {units!r}")
        if input_size is not None and (not isinstance(input_size, (int, np.integer))
                                       or isinstance(input_size, bool) or input_size <= 0):
            raise ValueError(f"{type(self).__name__}: input_size must be a positive "
                             f"integer, got {input_size!r}")
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__}: use_bias must be True or False, "
                            f"got {use_bias!r}")
        self.units = int(units)
        self.activation, self.activation_alpha = fused_activation(self, activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.input_size = None if input_size is None else int(input_size)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) == 0:
            raise ValueError(f"{type(self).__name__}: expected input of shape "
                             f"(None, ..., features), received a scalar per sample")
        if input_shape[-1] <= 0 or (self.input_size is not None
                                    and input_shape[-1] != self.input_size):
            raise ValueError(f"{type(self).__name__}: expected input shape "
                             f"{(None,) + input_shape[:-1] + (self.input_size,)}, received "
                             f"{(None,) + input_shape}")
        return input_shape[:-1] + (self.units,)

    def build(self, input_shape: Sequence[int]) -> None:
        self.compute_output_shape(tuple(input_shape))  # validates before drawing weights
        n_in = int(input_shape[-1])
        self.W = initializers.draw(self.kernel_initializer, self.rng, (n_in, self.units),
                                   n_in, self.units, self.dtype)
        self.b = np.zeros(self.units, self.dtype) if self.use_bias else None
        self.params = [self.W] if self.b is None else [self.W, self.b]
        self.grads = [np.zeros(p.shape, p.dtype) for p in self.params]   # committed when used
        super().build(input_shape)

    def make_ops(self) -> list:
        rows = int(np.prod(self._built_input_shape()[:-1], dtype=np.int64))
        gb = self.grads[1] if self.use_bias else None
        ops: List[Any] = [DenseOp(self.W, self.b, self.grads[0], gb, rows)]
        if self.activation is not None:
            size = rows * self.units
            ops.append(ActivationOp(self.activation, self.dtype, size,
                                    self.units, self.activation_alpha))
        return ops

    def __repr__(self) -> str:
        return f"Dense({self.units}, activation={self.activation!r})"

    def get_config(self) -> dict:
        return {"units": self.units,
                "activation": activation_config(self.activation, self.activation_alpha),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "input_size": self.input_size, "name": self.name}

    def weight_shapes(self, input_shape: Shape):
        self.compute_output_shape(tuple(input_shape))
        n_in = int(input_shape[-1])
        return [(n_in, self.units)] + ([(self.units,)] if self.use_bias else [])


