"""The convolution layer `Conv2D` (nncore.article adds `ConvLayer`)."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from .. import initializers, regularizers
from .._native.activation import ActivationOp
from .._native.conv import ConvOp
from .._native.convpool import ConvPoolOp
from ._window import as_pair, check_padding, image_shape, window_geometry
from .activation import (EPILOGUE, ActivationSpec, activation_config, epilogue_kind,
                         fused_activation, own_gradients)
from .base import NativeLayer, Shape


class Conv2D(NativeLayer):
    """2-D convolution of (height, width, channels) samples (NHWC).

    The kernel has shape (kh, kw, in_channels, filters); in_channels is taken
    from the data when the network is built.  `kernel_size` and `strides` are
    an int or a pair; `padding` is 'valid', 'same' (ceil(input / stride)
    outputs, odd extra padding at the bottom/right, as in Keras) or an int /
    pair of zero-padding rows and columns on both sides.  `activation` is an
    optional activation: a name, or an `Activation` layer such as
    `LeakyReLU(0.2)`.

    Parameters
    ----------
    filters : int
        The number of output channels.
    kernel_size : int or (int, int)
        The window's height and width.
    strides : int or (int, int), default 1
        The step of the window down and across.
    padding : {"valid", "same"} or int or (int, int), default "valid"
        No padding, Keras' "same" padding, or zero rows and columns added on
        both sides.
    use_bias : bool, default True
        Whether to add a bias per filter.
    activation : str or Activation, optional
        Applied to the outputs.
    kernel_initializer : str, default "he_uniform"
        How the kernel is drawn (a name of `nncore.initializers`).
    kernel_regularizer, bias_regularizer : Regularizer or str, optional
        Penalties on the kernel and the bias, added to the training loss
        and applied natively in the gradient (`nncore.regularizers`:
        ``L1(0.01)``, ``L2(1e-4)``, ``L1L2(...)`` or the names 'l1', 'l2',
        'l1_l2').
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If an argument is out of range, or (when the network is built) the
        window does not fit the input.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Conv2D(8, 3, activation="relu"),
    ...                       nncore.Conv2D(4, 3, strides=2, padding="same")],
    ...                      input_shape=(28, 28, 1), seed=0)
    >>> net.predict(np.zeros((2, 28, 28, 1), dtype=np.float32)).shape
    (2, 13, 13, 4)
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid",
                 use_bias: bool = True, activation: ActivationSpec = None,
                 kernel_initializer="he_uniform", kernel_regularizer=None,
                 bias_regularizer=None, name: Optional[str] = None):
        super().__init__(name)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(f"{type(self).__name__}: filters must be a positive integer, "
                             f"got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = as_pair(self, kernel_size, "kernel_size")
        self.strides = as_pair(self, strides, "strides")
        self.padding = check_padding(self, padding)
        self.use_bias = bool(use_bias)
        self.activation, self.activation_alpha = fused_activation(self, activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer, type(self).__name__)
        self.bias_regularizer = regularizers.get(bias_regularizer, type(self).__name__)

    def _geometry(self, input_shape: Shape):
        shape = image_shape(self, input_shape)
        return window_geometry(self, shape, self.kernel_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        (oh, ow), _ = self._geometry(input_shape)
        return (oh, ow, self.filters)

    def build(self, input_shape: Sequence[int]) -> None:
        self.compute_output_shape(tuple(input_shape))  # validates before drawing weights
        kh, kw = self.kernel_size
        channels = int(input_shape[-1])
        shape = (kh, kw, channels, self.filters)
        self.kernel = initializers.draw(self.kernel_initializer, self.rng, shape,
                                        kh * kw * channels, kh * kw * self.filters, self.dtype)
        self.bias = np.zeros(self.filters, self.dtype) if self.use_bias else None
        self.params = [self.kernel] if self.bias is None else [self.kernel, self.bias]
        self.grads = [np.zeros(p.shape, p.dtype) for p in self.params]   # committed when used
        self._penalties = regularizers.penalty_ops(self, [
            (self.kernel_regularizer, self.kernel, self.grads[0]),
            (self.bias_regularizer, self.bias, self.grads[-1])])
        super().build(input_shape)

    def make_ops(self) -> list:
        activation = None if self.activation is None else (self.activation,
                                                           self.activation_alpha)
        return self.conv_ops((self.kernel, self.bias), activation)

    def conv_ops(self, weights, activation, pool=None) -> list:
        """The ops of this convolution over `weights` (kernel, bias: the
        layer's own, or folded copies for inference), with `activation`
        ((name, alpha) or None) in the epilogue when it is element-wise and
        non-decreasing (else as an op of its own), fused with the MaxPool2D
        layer `pool` when given (its windows must not overlap nor pad)."""
        shape = image_shape(self, self._built_input_shape())
        (oh, ow), pad = self._geometry(shape)
        g_kernel, g_bias = own_gradients(self, weights)
        geometry = ((shape[0], shape[1]), (oh, ow), self.strides, pad)
        fused = activation if activation is None or activation[0] in EPILOGUE else None
        kind, alpha = epilogue_kind(fused)
        if pool is not None:
            return [ConvPoolOp(weights[0], weights[1], g_kernel, g_bias, *geometry, kind, alpha,
                               pool.pool_size)]
        ops: List[Any] = [ConvOp(weights[0], weights[1], g_kernel, g_bias, *geometry, kind,
                                 alpha)]
        if fused is None and activation is not None:
            ops.append(ActivationOp(activation[0], self.dtype, oh * ow * self.filters,
                                    self.filters, activation[1]))
        return ops

    def get_config(self) -> dict:
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides),
                "padding": self.padding if isinstance(self.padding, str) else
                list(self.padding),
                "use_bias": self.use_bias,
                "activation": activation_config(self.activation, self.activation_alpha),
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "kernel_regularizer": regularizers.config_of(self.kernel_regularizer),
                "bias_regularizer": regularizers.config_of(self.bias_regularizer),
                "name": self.name}

    def weight_shapes(self, input_shape: Shape):
        self.compute_output_shape(tuple(input_shape))
        kh, kw = self.kernel_size
        kernel = (kh, kw, int(input_shape[-1]), self.filters)
        return [kernel] + ([(self.filters,)] if self.use_bias else [])

    def __repr__(self) -> str:
        text = f"Conv2D({self.filters}, {self.kernel_size}"
        if self.strides != (1, 1):
            text += f", strides={self.strides}"
        if self.padding != "valid":
            text += f", padding={self.padding!r}"
        if self.activation is not None:
            text += f", activation={self.activation!r}"
        return text + ")"


