"""The convolution layer `Conv2D` (nncore.article adds `ConvLayer`)."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from .. import initializers
from .._native.activation import ActivationOp
from .._native.conv import ConvOp
from .._native.convpool import ConvPoolOp
from ._window import as_pair, check_padding, image_shape, window_geometry
from .activation import ActivationSpec, activation_config, fused_activation
from .base import NativeLayer, Shape
from .pooling import MaxPool2D


class Conv2D(NativeLayer):
    """2-D convolution of (height, width, channels) samples (NHWC).

    The kernel has shape (kh, kw, in_channels, filters); in_channels is taken
    from the data when the network is built.  `kernel_size` and `strides` are
    an int or a pair; `padding` is 'valid', 'same' (ceil(input / stride)
    outputs, odd extra padding at the bottom/right, as in Keras) or an int /
    pair of zero-padding rows and columns on both sides.  `activation` is an
    optional activation: a name, or an `Activation` layer such as
    `LeakyReLU(0.2)`.
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid",
                 use_bias: bool = True, activation: ActivationSpec = None,
                 kernel_initializer="he_uniform", name: Optional[str] = None):
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
        super().build(input_shape)

    def make_ops(self) -> list:
        shape = image_shape(self, self._built_input_shape())
        (oh, ow), pad = self._geometry(shape)
        g_bias = self.grads[1] if self.use_bias else None
        relu = self.activation == "relu"          # fused into the convolution
        ops: List[Any] = [ConvOp(self.kernel, self.bias, self.grads[0], g_bias,
                                 (shape[0], shape[1]), (oh, ow), self.strides, pad, relu)]
        if self.activation is not None and not relu:
            size = oh * ow * self.filters
            ops.append(ActivationOp(self.activation, self.dtype, size,
                                    self.filters, self.activation_alpha))
        return ops

    def pooled_op(self, pool) -> Optional[ConvPoolOp]:
        """One op for this layer followed by the MaxPool2D layer `pool`, when
        the pool's windows do not overlap and it has no padding (else None)."""
        if (type(pool) is not MaxPool2D or self.activation not in (None, "relu")
                or pool.strides != pool.pool_size or pool.padding not in ("valid", (0, 0))):
            return None
        shape = image_shape(self, self._built_input_shape())
        (oh, ow), pad = self._geometry(shape)
        g_bias = self.grads[1] if self.use_bias else None
        return ConvPoolOp(self.kernel, self.bias, self.grads[0], g_bias, (shape[0], shape[1]),
                          (oh, ow), self.strides, pad, self.activation == "relu",
                          pool.pool_size)

    def get_config(self) -> dict:
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides),
                "padding": self.padding if isinstance(self.padding, str) else
                list(self.padding),
                "use_bias": self.use_bias,
                "activation": activation_config(self.activation, self.activation_alpha),
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
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


