"""The fully connected layer `Dense` (nncore.article adds `FCLayer`)."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from .. import initializers, regularizers
from .._native.activation import ActivationOp
from .._native.dense import DenseOp
from .activation import (EPILOGUE, ActivationSpec, activation_config, epilogue_kind,
                         fused_activation, own_gradients)
from .base import NativeLayer, Shape


class Dense(NativeLayer):
    """y = activation(x @ W + b) on the last axis; W has shape (in, units).

    The input size is taken from the data when the network is built, or fixed
    with `input_size`.  `activation` is an optional activation: a name, or an
    `Activation` layer such as `LeakyReLU(0.2)`.

    Parameters
    ----------
    units : int
        The number of outputs, a positive integer.
    activation : str or Activation, optional
        Applied to the outputs: a name ('tanh', 'sigmoid', 'relu',
        'leaky_relu', 'softmax', 'identity') or an `Activation` layer.
    use_bias : bool, default True
        Whether to add the bias b.
    kernel_initializer : str, default "glorot_uniform"
        How W is drawn (a name of `nncore.initializers`).
    kernel_regularizer, bias_regularizer : Regularizer or str, optional
        Penalties on the weights W and the bias, added to the training loss
        and applied natively in the gradient (`nncore.regularizers`:
        ``L1(0.01)``, ``L2(1e-4)``, ``L1L2(...)`` or the names 'l1', 'l2',
        'l1_l2').
    input_size : int, optional
        The number of inputs, when it should not be taken from the data.
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If `units` or `input_size` is not a positive integer, or the
        activation or initializer name is unknown.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Dense(4, activation="relu"), nncore.Dense(2)],
    ...                      input_shape=(3,), seed=0)
    >>> net.predict(np.zeros((5, 3), dtype=np.float32)).shape
    (5, 2)
    >>> net.count_params()
    26
    """

    def __init__(self, units: int, activation: ActivationSpec = None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", input_size: Optional[int] = None,
                 kernel_regularizer=None, bias_regularizer=None,
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
        self.kernel_regularizer = regularizers.get(kernel_regularizer, type(self).__name__)
        self.bias_regularizer = regularizers.get(bias_regularizer, type(self).__name__)

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
        self._penalties = regularizers.penalty_ops(self, [
            (self.kernel_regularizer, self.W, self.grads[0]),
            (self.bias_regularizer, self.b, self.grads[-1])])
        super().build(input_shape)

    def make_ops(self) -> list:
        activation = None if self.activation is None else (self.activation,
                                                           self.activation_alpha)
        return self.dense_ops((self.W, self.b), activation, fuse=False)

    def dense_ops(self, weights, activation, fuse: bool) -> list:
        """The ops of this layer over `weights` (W, b: the layer's own, or
        folded copies for inference) with `activation` ((name, alpha) or
        None): in the dense op's epilogue when `fuse` and it is element-wise
        and non-decreasing, else as an op of its own."""
        rows = int(np.prod(self._built_input_shape()[:-1], dtype=np.int64))
        g_kernel, g_bias = own_gradients(self, weights)
        fused = activation if fuse and activation is not None and \
            activation[0] in EPILOGUE else None
        kind, alpha = epilogue_kind(fused)
        ops: List[Any] = [DenseOp(weights[0], weights[1], g_kernel, g_bias, rows, kind, alpha)]
        if fused is None and activation is not None:
            ops.append(ActivationOp(activation[0], self.dtype, rows * self.units,
                                    self.units, activation[1]))
        return ops

    def __repr__(self) -> str:
        return f"Dense({self.units}, activation={self.activation!r})"

    def get_config(self) -> dict:
        return {"units": self.units,
                "activation": activation_config(self.activation, self.activation_alpha),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "input_size": self.input_size,
                "kernel_regularizer": regularizers.config_of(self.kernel_regularizer),
                "bias_regularizer": regularizers.config_of(self.bias_regularizer),
                "name": self.name}

    def weight_shapes(self, input_shape: Shape):
        self.compute_output_shape(tuple(input_shape))
        n_in = int(input_shape[-1])
        return [(n_in, self.units)] + ([(self.units,)] if self.use_bias else [])


