"""Layers for sequences of (time, features) samples: Embedding, Conv1D and
the 1-D pooling layers."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from .. import initializers, regularizers
from .._native.activation import ActivationOp
from .._native.conv1d import Conv1DOp
from .._native.embedding import EmbeddingOp
from .._native.masked_pool import MaskedMeanOp
from .._native.pool import PoolOp
from .activation import ActivationSpec, activation_config, fused_activation
from .base import NativeLayer, Shape
from .pooling import _Pool2D

# the largest index count a float32 network can hold exactly (integers up to
# 2**24 are exact in float32; float64 holds them up to 2**53)
EXACT_INTEGERS = {np.dtype("float32"): 1 << 24, np.dtype("float64"): 1 << 53}


def _positive_int(layer, value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{type(layer).__name__}: {what} must be a positive integer, "
                         f"got {value!r}")
    return int(value)


def sequence_shape(layer, input_shape) -> Tuple[int, int]:
    if len(input_shape) != 2:
        raise ValueError(f"{type(layer).__name__}: expected input of shape "
                         f"(None, steps, features), received {(None,) + tuple(input_shape)}")
    return int(input_shape[0]), int(input_shape[1])


def window_1d(layer, length: int, size: int, stride: int, dilation: int,
              padding: str) -> Tuple[int, int]:
    """(output length, left padding) of a window of `size` taps `dilation`
    apart sliding over `length` steps.  'same' gives ceil(length / stride)
    outputs with any odd extra padding on the right (as Keras); 'causal'
    pads (size - 1) * dilation steps on the left only, so output t sees
    inputs up to t * stride."""
    span = (size - 1) * dilation + 1
    if padding == "same":
        out = -(-length // stride)
        return out, max((out - 1) * stride + span - length, 0) // 2
    pad = span - 1 if padding == "causal" else 0
    if length + pad < span:
        raise ValueError(f"{type(layer).__name__}: a window spanning {span} steps does not "
                         f"fit an input of {length} steps with padding {padding!r}")
    return (length + pad - span) // stride + 1, pad


class Embedding(NativeLayer):
    """Maps each of the T integer indices of a sample to a row of a trained
    (input_dim, output_dim) table: (T,) samples become (T, output_dim).

    The indices arrive in the network's float dtype (as every input does) and
    are checked where they enter the network: they must be integers in
    [0, input_dim).  Embedding must therefore be the first layer; in float32
    networks input_dim is at most 2**24, the integers float32 holds exactly.
    Backward writes the gradient of the table: the summed output gradients in
    the rows the batch used, zeros elsewhere (plus the regularizer's
    gradient, on every row).

    Parameters
    ----------
    input_dim : int
        The number of rows of the table: indices go from 0 to input_dim - 1.
    output_dim : int
        The length of each row.
    embeddings_initializer : str, default "glorot_uniform"
        How the table is drawn (a name of `nncore.initializers`).
    embeddings_regularizer : Regularizer or str, optional
        A penalty on the whole table, as Dense's `kernel_regularizer`.
    mask_zero : bool, default False
        Index 0 marks padding: the recurrent layers after it (SimpleRNN,
        LSTM, GRU, Bidirectional) skip the positions whose index is 0,
        carrying their state over them, as in Keras.  Layers that keep the
        steps (Dense, Activation, Dropout, LayerNormalization,
        PositionalEmbedding, a Residual block of those, a recurrent layer
        with return_sequences) pass the mask on; a recurrent layer without
        return_sequences consumes it, and so does GlobalAveragePooling1D
        (averaging over the unmasked steps); any other layer that would
        receive it is refused when the network is built.  Row 0 of the table is still
        a row (so input_dim counts the padding index, as in Keras).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If a size is not a positive integer; when the network runs, if an
        index is not an integer in [0, input_dim).

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Embedding(10, 4), nncore.GlobalAveragePooling1D()],
    ...                      input_shape=(3,), seed=0)
    >>> net.predict(np.array([[1, 2, 9], [0, 0, 0]])).shape
    (2, 4)

    With mask_zero, padded sequences give the LSTM the same last state as
    the sequence alone:

    >>> net = nncore.Network([nncore.Embedding(10, 4, mask_zero=True), nncore.LSTM(3)],
    ...                      input_shape=(4,), seed=0)
    >>> padded = net.predict(np.array([[5, 2, 0, 0]]))
    >>> alone = nncore.Network([nncore.Embedding(10, 4), nncore.LSTM(3)], input_shape=(2,))
    >>> alone.set_weights(net.get_weights())
    >>> bool(np.allclose(padded, alone.predict(np.array([[5, 2]]))))
    True
    """

    #: the layer reads integer indices: it must be first, and network inputs
    #: are checked by `check_input`
    reads_indices = True

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer="glorot_uniform", embeddings_regularizer=None,
                 mask_zero: bool = False, name: Optional[str] = None):
        super().__init__(name)
        if not isinstance(mask_zero, (bool, np.bool_)):
            raise ValueError(f"{type(self).__name__}: mask_zero must be True or False, "
                             f"got {mask_zero!r}")
        self.mask_zero = bool(mask_zero)
        self.input_dim = _positive_int(self, input_dim, "input_dim")
        self.output_dim = _positive_int(self, output_dim, "output_dim")
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer,
                                                       type(self).__name__)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"{type(self).__name__}: expected input of shape (None, steps) "
                             f"of integer indices, received {(None,) + tuple(input_shape)}")
        return (int(input_shape[0]), self.output_dim)

    def build(self, input_shape: Sequence[int]) -> None:
        self.compute_output_shape(tuple(input_shape))
        limit = EXACT_INTEGERS[np.dtype(self.dtype)]
        if self.input_dim > limit:
            raise ValueError(f"{type(self).__name__}: input_dim {self.input_dim} is more "
                             f"than the {limit} indices a {np.dtype(self.dtype)} network "
                             f"holds exactly; use dtype='float64'")
        self.embeddings = initializers.draw(self.embeddings_initializer, self.rng,
                                            (self.input_dim, self.output_dim),
                                            self.input_dim, self.output_dim, self.dtype)
        self.params = [self.embeddings]
        self.grads = [np.zeros_like(self.embeddings)]
        self._penalties = regularizers.penalty_ops(self, [
            (self.embeddings_regularizer, self.embeddings, self.grads[0])])
        super().build(input_shape)

    def make_ops(self) -> list:
        return [EmbeddingOp(self.embeddings, self.grads[0], self._built_input_shape()[0])]

    def check_input(self, x: np.ndarray, what: str) -> None:
        """Raise ValueError unless every value of x is an integer in [0, input_dim)."""
        low, high = float(x.min()), float(x.max())
        if low < 0 or high >= self.input_dim:
            raise ValueError(f"{type(self).__name__}: {what} holds indices in "
                             f"[{low:g}, {high:g}], outside [0, {self.input_dim})")
        if not np.array_equal(x, np.floor(x)):
            raise ValueError(f"{type(self).__name__}: {what} must hold integer indices, "
                             f"found fractions")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind in "biuf" and x.size:
            self.check_input(x.astype(np.float64), "input")
        return super().forward(x, training)

    def get_config(self) -> dict:
        return {"input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": initializers.name_of(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.config_of(self.embeddings_regularizer),
                "mask_zero": self.mask_zero, "name": self.name}

    def weight_shapes(self, input_shape: Shape):
        self.compute_output_shape(tuple(input_shape))
        return [(self.input_dim, self.output_dim)]

    def __repr__(self) -> str:
        mask = ", mask_zero=True" if self.mask_zero else ""
        return f"Embedding({self.input_dim}, {self.output_dim}{mask})"


class Conv1D(NativeLayer):
    """1-D convolution of (steps, channels) samples.

    The kernel has shape (kernel_size, in_channels, filters).  `padding` is
    'valid', 'same' (ceil(steps / strides) outputs, odd extra padding on the
    right, as Keras) or 'causal' ((kernel_size - 1) * dilation_rate zeros on
    the left: output t depends on inputs up to t only).  `dilation_rate`
    spaces the taps.  `activation` as for Dense.

    Parameters
    ----------
    filters : int
        The number of output channels.
    kernel_size : int
        The window's length in steps.
    strides : int, default 1
        The step of the window.
    padding : {"valid", "same", "causal"}, default "valid"
        See above.
    dilation_rate : int, default 1
        The distance between the window's taps.
    use_bias : bool, default True
        Whether to add a bias per filter.
    activation : str or Activation, optional
        Applied to the outputs.
    kernel_initializer : str, default "glorot_uniform"
        How the kernel is drawn (a name of `nncore.initializers`).
    kernel_regularizer, bias_regularizer : Regularizer or str, optional
        Penalties on the kernel and the bias, as Dense's.
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
    >>> net = nncore.Network([nncore.Conv1D(8, 3, padding="causal", activation="relu")],
    ...                      input_shape=(10, 2), seed=0)
    >>> net.predict(np.zeros((4, 10, 2), dtype=np.float32)).shape
    (4, 10, 8)
    """

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, padding="valid",
                 dilation_rate: int = 1, use_bias: bool = True,
                 activation: ActivationSpec = None, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, bias_regularizer=None, name: Optional[str] = None):
        super().__init__(name)
        self.filters = _positive_int(self, filters, "filters")
        self.kernel_size = _positive_int(self, kernel_size, "kernel_size")
        self.strides = _positive_int(self, strides, "strides")
        self.dilation_rate = _positive_int(self, dilation_rate, "dilation_rate")
        if padding not in ("valid", "same", "causal"):
            raise ValueError(f"{type(self).__name__}: padding must be 'valid', 'same' or "
                             f"'causal', got {padding!r}")
        self.padding = padding
        self.use_bias = bool(use_bias)
        self.activation, self.activation_alpha = fused_activation(self, activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer, type(self).__name__)
        self.bias_regularizer = regularizers.get(bias_regularizer, type(self).__name__)

    def _geometry(self, input_shape: Shape) -> Tuple[int, int]:
        steps, _ = sequence_shape(self, input_shape)
        return window_1d(self, steps, self.kernel_size, self.strides, self.dilation_rate,
                         self.padding)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (self._geometry(input_shape)[0], self.filters)

    def build(self, input_shape: Sequence[int]) -> None:
        self.compute_output_shape(tuple(input_shape))
        channels = int(input_shape[-1])
        shape = (self.kernel_size, channels, self.filters)
        self.kernel = initializers.draw(self.kernel_initializer, self.rng, shape,
                                        self.kernel_size * channels,
                                        self.kernel_size * self.filters, self.dtype)
        self.bias = np.zeros(self.filters, self.dtype) if self.use_bias else None
        self.params = [self.kernel] if self.bias is None else [self.kernel, self.bias]
        self.grads = [np.zeros_like(p) for p in self.params]
        self._penalties = regularizers.penalty_ops(self, [
            (self.kernel_regularizer, self.kernel, self.grads[0]),
            (self.bias_regularizer, self.bias, self.grads[-1])])
        super().build(input_shape)

    def make_ops(self) -> list:
        steps = self._built_input_shape()[0]
        out, pad = self._geometry(self._built_input_shape())
        g_bias = self.grads[1] if self.use_bias else None
        ops: List[Any] = [Conv1DOp(self.kernel, self.bias, self.grads[0], g_bias, steps, out,
                                   self.strides, self.dilation_rate, pad)]
        if self.activation is not None:
            ops.append(ActivationOp(self.activation, self.dtype, out * self.filters,
                                    self.filters, self.activation_alpha))
        return ops

    def get_config(self) -> dict:
        return {"filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "dilation_rate": self.dilation_rate, "use_bias": self.use_bias,
                "activation": activation_config(self.activation, self.activation_alpha),
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "kernel_regularizer": regularizers.config_of(self.kernel_regularizer),
                "bias_regularizer": regularizers.config_of(self.bias_regularizer),
                "name": self.name}

    def weight_shapes(self, input_shape: Shape):
        self.compute_output_shape(tuple(input_shape))
        kernel = (self.kernel_size, int(input_shape[-1]), self.filters)
        return [kernel] + ([(self.filters,)] if self.use_bias else [])

    def __repr__(self) -> str:
        text = f"Conv1D({self.filters}, {self.kernel_size}"
        for key, default in (("strides", 1), ("padding", "valid"), ("dilation_rate", 1),
                             ("activation", None)):
            if getattr(self, key) != default:
                text += f", {key}={getattr(self, key)!r}"
        return text + ")"


class _Pool1D(NativeLayer):
    kind = ""

    def __init__(self, pool_size: int = 2, strides: Optional[int] = None,
                 padding: str = "valid", name: Optional[str] = None):
        super().__init__(name)
        self.pool_size = _positive_int(self, pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else \
            _positive_int(self, strides, "strides")
        if padding not in ("valid", "same"):
            raise ValueError(f"{type(self).__name__}: padding must be 'valid' or 'same', "
                             f"got {padding!r}")
        self.padding = padding

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        steps, channels = sequence_shape(self, input_shape)
        out, _ = window_1d(self, steps, self.pool_size, self.strides, 1, self.padding)
        return (out, channels)

    def make_ops(self) -> list:
        steps, channels = sequence_shape(self, self._built_input_shape())
        out, pad = window_1d(self, steps, self.pool_size, self.strides, 1, self.padding)
        # a (1, steps) image whose windows span one row
        return [PoolOp(self.kind, self.dtype, (1, steps, channels), (1, out),
                       (1, self.pool_size), (1, self.strides), (0, pad))]

    def get_config(self) -> dict:
        return {"pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "name": self.name}

    def weight_shapes(self, input_shape: Shape):
        return []

    __repr__ = _Pool2D.__repr__          # (pool_size, strides, padding) read the same


class MaxPool1D(_Pool1D):
    """The maximum over each window of pool_size steps (strides default to
    pool_size); with padding='same', windows use the steps inside the input.

    Parameters
    ----------
    pool_size : int, default 2
        The window's length in steps.
    strides : int, optional
        The step of the window (default: `pool_size`).
    padding : {"valid", "same"}, default "valid"
        No padding, or Keras's "same" (ceil(steps / strides) outputs).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.MaxPool1D(2)], input_shape=(4, 1))
    >>> net.predict(np.array([[[1], [3], [2], [0]]], dtype=np.float32)).ravel()
    array([3., 2.], dtype=float32)
    """
    kind = "max"


class AveragePooling1D(_Pool1D):
    """The mean over each window of pool_size steps (strides default to
    pool_size); with padding='same', windows average the steps inside the
    input only.

    Parameters
    ----------
    pool_size : int, default 2
        The window's length in steps.
    strides : int, optional
        The step of the window (default: `pool_size`).
    padding : {"valid", "same"}, default "valid"
        No padding, or Keras's "same" (ceil(steps / strides) outputs).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.AveragePooling1D(2)], input_shape=(4, 1))
    >>> net.predict(np.array([[[1], [3], [2], [0]]], dtype=np.float32)).ravel()
    array([2., 1.], dtype=float32)
    """
    kind = "avg"


class _GlobalPool1D(NativeLayer):
    kind = ""

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (sequence_shape(self, input_shape)[1],)

    def make_ops(self) -> list:
        steps, channels = sequence_shape(self, self._built_input_shape())
        return [PoolOp(self.kind, self.dtype, (1, steps, channels), (1, 1), (1, steps),
                       (1, steps), (0, 0))]

    def weight_shapes(self, input_shape: Shape):
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GlobalMaxPooling1D(_GlobalPool1D):
    """The maximum over the steps: (steps, channels) samples become (channels,).

    Parameters
    ----------
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.GlobalMaxPooling1D()], input_shape=(3, 2))
    >>> net.predict(np.array([[[1, 5], [4, 0], [2, 2]]], dtype=np.float32))
    array([[4., 5.]], dtype=float32)
    """
    kind = "max"


class GlobalAveragePooling1D(_GlobalPool1D):
    """The mean over the steps: (steps, channels) samples become (channels,).

    After Embedding(mask_zero=True) (through layers that pass the mask on),
    the mean over the unmasked steps only, as in Keras; a sample with no
    unmasked step gives zeros (Keras divides 0 by 0).

    Parameters
    ----------
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.GlobalAveragePooling1D()], input_shape=(3, 2))
    >>> net.predict(np.array([[[1, 5], [4, 0], [1, 1]]], dtype=np.float32))
    array([[2., 2.]], dtype=float32)
    """
    kind = "avg"
    #: whether the mask of Embedding(mask_zero=True) reaches the layer
    receives_mask = False

    def set_mask(self, source) -> None:
        """Average over the steps that the Embedding op `source` leaves
        unmasked (None: over every step).  Called when the network is built."""
        if source is not None:
            op = MaskedMeanOp(self.dtype, *sequence_shape(self, self._built_input_shape()))
            op.set_mask(source)
            self._ops = [op]
        elif self.receives_mask:
            self._ops = self.make_ops()
        self.receives_mask = source is not None
        self._plan = None


MaxPooling1D = MaxPool1D
AvgPool1D = AveragePooling1D
