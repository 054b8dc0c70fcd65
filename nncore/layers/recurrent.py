"""Recurrent layers over (steps, features) samples: SimpleRNN, LSTM, GRU.

Weights follow Keras: `kernel` (features, G*units) projects the input,
`recurrent_kernel` (units, G*units) the previous state, with G gate blocks
side by side:

* SimpleRNN: h = tanh(x W + h_prev U + b)                     (G = 1)
* LSTM, blocks (i, f, c, o): i, f, o = sigmoid(...), c~ = tanh(...),
  c = f * c_prev + i * c~, h = o * tanh(c); `bias` (4 units)   (G = 4)
* GRU, blocks (z, r, h): z, r = sigmoid(x W + h_prev U + b_x + b_h),
  h~ = tanh(x W_h + b_xh + r * (h_prev U_h + b_hh)),
  h = z * h_prev + (1 - z) * h~; `bias` (2, 3 units): input and recurrent
  biases (Keras' reset_after=True)                             (G = 3)

PyTorch holds the transposes, W_ih = kernel.T and W_hh = recurrent_kernel.T,
with the LSTM's blocks in the same order (i, f, g, o) and bias_ih + bias_hh
= bias; its GRU orders the blocks (r, z, n): swap the first two blocks, and
bias_ih, bias_hh are bias[0], bias[1].  The state starts at zero.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .. import initializers, regularizers
from .._native.recurrent import RecurrentOp
from .base import NativeLayer, Shape
from .sequence import _positive_int, sequence_shape


def orthogonal(rng, shape) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (whichever are fewer)."""
    rows, cols = shape
    q, r = np.linalg.qr(rng.normal(size=(max(rows, cols), min(rows, cols))))
    q *= np.sign(np.diag(r))
    return q.T if rows < cols else q


class _Recurrent(NativeLayer):
    cell = ""
    gates = 1

    def __init__(self, units: int, return_sequences: bool = False, go_backwards: bool = False,
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 name: Optional[str] = None):
        super().__init__(name)
        self.units = _positive_int(self, units, "units")
        self.return_sequences = bool(return_sequences)
        self.go_backwards = bool(go_backwards)
        owner = type(self).__name__
        self.kernel_regularizer = regularizers.get(kernel_regularizer, owner)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer, owner)
        self.bias_regularizer = regularizers.get(bias_regularizer, owner)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        steps, _ = sequence_shape(self, input_shape)
        return (steps, self.units) if self.return_sequences else (self.units,)

    def _bias_shape(self) -> Shape:
        return (self.gates * self.units,)

    def build(self, input_shape: Sequence[int]) -> None:
        """Keras' initial weights: Glorot-uniform kernel, orthogonal recurrent
        kernel, zero bias (the LSTM's forget gate bias at one)."""
        self.compute_output_shape(tuple(input_shape))
        features, width = int(input_shape[-1]), self.gates * self.units
        self.kernel = initializers.draw(initializers.glorot_uniform, self.rng,
                                        (features, width), features, width, self.dtype)
        self.recurrent_kernel = np.ascontiguousarray(
            orthogonal(self.rng, (self.units, width)), self.dtype)
        self.bias = np.zeros(self._bias_shape(), self.dtype)
        if self.cell == "lstm":
            self.bias[self.units:2 * self.units] = 1
        self.params = [self.kernel, self.recurrent_kernel, self.bias]
        self.grads = [np.zeros_like(p) for p in self.params]
        self._penalties = regularizers.penalty_ops(self, zip(
            (self.kernel_regularizer, self.recurrent_regularizer, self.bias_regularizer),
            self.params, self.grads))
        super().build(input_shape)

    def make_ops(self) -> list:
        steps, _ = sequence_shape(self, self._built_input_shape())
        return [RecurrentOp(self.cell, self.kernel, self.recurrent_kernel, self.bias,
                            *self.grads, steps, self.return_sequences, self.go_backwards)]

    def get_config(self) -> dict:
        return {"units": self.units, "return_sequences": self.return_sequences,
                "go_backwards": self.go_backwards,
                "kernel_regularizer": regularizers.config_of(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.config_of(self.recurrent_regularizer),
                "bias_regularizer": regularizers.config_of(self.bias_regularizer),
                "name": self.name}

    def weight_shapes(self, input_shape: Shape):
        self.compute_output_shape(tuple(input_shape))
        width = self.gates * self.units
        return [(int(input_shape[-1]), width), (self.units, width), self._bias_shape()]

    def __repr__(self) -> str:
        text = f"{type(self).__name__}({self.units}"
        if self.return_sequences:
            text += ", return_sequences=True"
        if self.go_backwards:
            text += ", go_backwards=True"
        return text + ")"


class SimpleRNN(_Recurrent):
    """A fully connected recurrent layer: h = tanh(x W + h_prev U + b).
    Outputs the last state (units,) or, with return_sequences, every step's
    (steps, units); go_backwards reads the steps last to first.

    Parameters
    ----------
    units : int
        The size of the state (and of each output step).
    return_sequences : bool, default False
        Output every step's state (steps, units) instead of the last (units,).
    go_backwards : bool, default False
        Read the steps last to first.
    kernel_regularizer, recurrent_regularizer, bias_regularizer : Regularizer or str, optional
        Penalties on `kernel`, `recurrent_kernel` and `bias`, as Dense's
        `kernel_regularizer`.
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If units is not a positive integer, or (when the network is built)
        the input is not (steps, features).

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.SimpleRNN(4, return_sequences=True), nncore.SimpleRNN(3)],
    ...                      input_shape=(5, 2), seed=0)
    >>> [w.shape for w in net.layers[1].get_weights()]
    [(4, 3), (3, 3), (3,)]
    >>> net.predict(np.zeros((6, 5, 2), dtype=np.float32)).shape
    (6, 3)
    """
    cell, gates = "simple", 1


class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter & Schmidhuber), gates (i, f, c, o)
    as in Keras and PyTorch; see the module docstring.

    Parameters
    ----------
    units : int
        The size of the state (and of each output step).
    return_sequences : bool, default False
        Output every step's state (steps, units) instead of the last (units,).
    go_backwards : bool, default False
        Read the steps last to first.
    kernel_regularizer, recurrent_regularizer, bias_regularizer : Regularizer or str, optional
        Penalties on `kernel`, `recurrent_kernel` and `bias`, as Dense's
        `kernel_regularizer`.
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If units is not a positive integer, or (when the network is built)
        the input is not (steps, features).

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.LSTM(4, return_sequences=True), nncore.LSTM(3)],
    ...                      input_shape=(5, 2), seed=0)
    >>> [w.shape for w in net.layers[1].get_weights()]
    [(4, 12), (3, 12), (12,)]
    >>> net.predict(np.zeros((6, 5, 2), dtype=np.float32)).shape
    (6, 3)
    """
    cell, gates = "lstm", 4


class GRU(_Recurrent):
    """Gated recurrent unit with the reset gate after the recurrent
    projection (Keras' default reset_after=True, PyTorch's GRU); see the
    module docstring for the gate order and its mapping to PyTorch.

    Parameters
    ----------
    units : int
        The size of the state (and of each output step).
    return_sequences : bool, default False
        Output every step's state (steps, units) instead of the last (units,).
    go_backwards : bool, default False
        Read the steps last to first.
    kernel_regularizer, recurrent_regularizer, bias_regularizer : Regularizer or str, optional
        Penalties on `kernel`, `recurrent_kernel` and `bias`, as Dense's
        `kernel_regularizer`.
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If units is not a positive integer, or (when the network is built)
        the input is not (steps, features).

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.GRU(4, return_sequences=True), nncore.GRU(3)],
    ...                      input_shape=(5, 2), seed=0)
    >>> [w.shape for w in net.layers[1].get_weights()]
    [(4, 9), (3, 9), (2, 9)]
    >>> net.predict(np.zeros((6, 5, 2), dtype=np.float32)).shape
    (6, 3)
    """
    cell, gates = "gru", 3

    def _bias_shape(self) -> Shape:
        return (2, 3 * self.units)
