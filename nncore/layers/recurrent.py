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

Masking (Embedding(mask_zero=True) before the layer): a step whose index
is 0 leaves the state unchanged, so the last state is the one after the
last unmasked step; with return_sequences a masked step outputs the carried
state (Keras' zero_output_for_mask=False), in Bidirectional zero (Keras
forces zero_output_for_mask=True there, and PyTorch's packed sequences pad
with zeros).

Bidirectional(layer, merge_mode) runs the layer and a copy reading the steps
last to first (Keras' backward_layer) over the same input and merges their
outputs at each position; its weights are the forward layer's three arrays,
then the backward layer's (PyTorch's weight_*_l0 and weight_*_l0_reverse).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .. import initializers, regularizers, registry
from .._native.recurrent import BidirectionalOp, RecurrentOp
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


MERGE_MODES = ("concat", "sum", "mul", "ave")


class Bidirectional(NativeLayer):
    """Runs a recurrent layer over the steps in both directions and merges
    the two outputs, as Keras' Bidirectional.

    The backward layer is a copy of `layer` (same class and arguments, its
    own weights) that reads the steps last to first; with return_sequences
    its outputs are put back in input order, so position t merges the
    forward state after steps 0..t with the backward state after steps
    T-1..t.  Without, the two last states are merged.  Its weights are the
    forward layer's (kernel, recurrent_kernel, bias) followed by the backward
    layer's; PyTorch's bidirectional=True holds the same arrays as
    weight_ih_l0 ... and weight_ih_l0_reverse ... (transposed, gate blocks
    mapped as for the layer alone).  With Embedding(mask_zero=True) before
    it, both directions skip the masked steps and a masked position outputs
    zero (Keras and PyTorch's packed sequences do the same).  Both
    directions run in one native op.

    Parameters
    ----------
    layer : SimpleRNN, LSTM or GRU
        The forward layer (not yet in a network, reading forward:
        go_backwards=False); its return_sequences applies to both.
    merge_mode : {"concat", "sum", "mul", "ave"}, default "concat"
        How the two outputs are merged: side by side (2 * units features),
        added, multiplied or averaged.  Keras' None (the two outputs
        separately) is refused: a layer here has one output.
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    TypeError
        If `layer` is not a SimpleRNN, LSTM or GRU.
    ValueError
        If merge_mode is not one of the four, or the layer reads backwards.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Embedding(10, 4, mask_zero=True),
    ...                       nncore.Bidirectional(nncore.LSTM(3, return_sequences=True)),
    ...                       nncore.Bidirectional(nncore.GRU(2), merge_mode="sum")],
    ...                      input_shape=(5,), seed=0)
    >>> net.layers[1].output_shape, net.layers[2].output_shape
    ((5, 6), (2,))
    >>> [w.shape for w in net.layers[2].get_weights()]
    [(6, 6), (2, 6), (2, 6), (6, 6), (2, 6), (2, 6)]
    >>> net.predict(np.array([[3, 1, 4, 0, 0]])).shape
    (1, 2)
    """

    def __init__(self, layer: _Recurrent, merge_mode: Optional[str] = "concat",
                 name: Optional[str] = None):
        super().__init__(name)
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"Bidirectional: wraps a SimpleRNN, LSTM or GRU, "
                            f"got {type(layer).__name__}")
        if merge_mode is None:
            raise ValueError("Bidirectional: merge_mode=None (the two outputs separately) is "
                             "not supported: a layer of an nncore network has one output; "
                             "use 'concat', 'sum', 'mul' or 'ave'")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {MERGE_MODES}, "
                             f"got {merge_mode!r}")
        if layer.go_backwards:
            raise ValueError("Bidirectional: give the layer reading forward "
                             "(go_backwards=False); the backward copy is made from it")
        if layer.built:
            raise ValueError("Bidirectional: give a new layer (this one is built)")
        self.merge_mode = merge_mode
        self.forward_layer = layer
        config = dict(layer.get_config(), go_backwards=True)
        config["name"] = None if layer.name is None else "backward_" + layer.name
        self.backward_layer = type(layer).from_config(config)

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = self.forward_layer.compute_output_shape(tuple(input_shape))
        if self.merge_mode == "concat":
            shape = shape[:-1] + (2 * shape[-1],)
        return shape

    def build(self, input_shape: Sequence[int]) -> None:
        self.compute_output_shape(tuple(input_shape))
        for layer in (self.forward_layer, self.backward_layer):
            layer.dtype, layer.rng = self.dtype, self.rng
            layer.build(input_shape)
        self.params = self.forward_layer.params + self.backward_layer.params
        self.grads = self.forward_layer.grads + self.backward_layer.grads
        self._penalties = self.forward_layer.penalty_ops() + self.backward_layer.penalty_ops()
        super().build(input_shape)

    def make_ops(self) -> list:
        steps, _ = sequence_shape(self, self._built_input_shape())
        forward, backward = self.forward_layer, self.backward_layer
        return [BidirectionalOp(forward.cell, tuple(forward.params + forward.grads),
                                tuple(backward.params + backward.grads), steps,
                                forward.return_sequences, self.merge_mode)]

    def get_config(self) -> dict:
        return {"layer": {"class": registry.registered_name("layer", self.forward_layer),
                          "config": self.forward_layer.get_config()},
                "merge_mode": self.merge_mode, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "Bidirectional":
        config = dict(config)
        entry = config.pop("layer", None)
        from ..saving import _class_entry, _construct
        name, layer_config = _class_entry(entry, "Bidirectional layer")
        layer_cls = registry.lookup("layer", name)
        if not (isinstance(layer_cls, type) and issubclass(layer_cls, _Recurrent)):
            raise ValueError(f"Bidirectional: wraps a SimpleRNN, LSTM or GRU, not {name}")
        layer = _construct(layer_cls, layer_config, f"Bidirectional layer ({name})")
        return cls(layer, **config)

    def weight_shapes(self, input_shape: Shape):
        self.compute_output_shape(tuple(input_shape))
        return 2 * self.forward_layer.weight_shapes(input_shape)

    def __repr__(self) -> str:
        merge = "" if self.merge_mode == "concat" else f", merge_mode={self.merge_mode!r}"
        return f"Bidirectional({self.forward_layer!r}{merge})"
