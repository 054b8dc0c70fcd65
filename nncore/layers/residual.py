"""The residual block `Residual(*layers)`: y = x + f(x)."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .. import registry
from .._native.residual import ResidualOp
from .base import Layer, Shape
from .normalization import BatchNormalization

#: the deepest nesting of Residual blocks a saved model may hold
MAX_NESTING = 32


class Residual(Layer):
    """y = x + f(x), where f runs `layers` one after the other.

    The network stays a stack of layers: a residual block is one layer of
    it that holds the layers of f, and the native plan runs f's ops between
    an op that keeps x and an op that adds it back.  f must give outputs of
    the shape of its input.  The block's parameters (and saved state) are
    those of its layers, in order; it saves, loads, copies and exports to
    ONNX (as the layers' nodes and an Add) like any built-in layer.

    Parameters
    ----------
    *layers : Layer
        The layers of f, first to last (at least one); a layer can belong
        to one block or network only.  Layers written in Python are allowed
        (the network then runs in Python); Embedding is not (it reads
        integer indices, so it must start the network).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    TypeError
        If an argument is not a Layer, or a layer appears twice.
    ValueError
        If no layer is given, or when built, f changes the shape of its input.

    Examples
    --------
    A pre-norm transformer block:

    >>> import numpy as np, nncore
    >>> net = nncore.Network([
    ...     nncore.Residual(nncore.LayerNormalization(),
    ...                     nncore.MultiHeadAttention(2, 4, causal=True)),
    ...     nncore.Residual(nncore.LayerNormalization(), nncore.Dense(16, activation="relu"),
    ...                     nncore.Dense(8))], input_shape=(5, 8), seed=0)
    >>> net.predict(np.zeros((3, 5, 8), np.float32)).shape
    (3, 5, 8)
    """

    def __init__(self, *layers: Layer, name: Optional[str] = None):
        super().__init__(name)
        if not layers:
            raise ValueError("Residual: give at least one layer")
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Residual: argument {index} must be an nncore Layer, "
                                f"got {type(layer).__name__}")
            if getattr(layer, "reads_indices", False):
                raise ValueError(f"Residual: layer {index} ({type(layer).__name__}) reads "
                                 f"integer indices, so it must be the network's first layer")
        if len({id(layer) for layer in layers}) != len(layers):
            raise TypeError("Residual: a layer appears twice; create one per position")
        self.layers: List[Layer] = list(layers)

    def _where(self, index: int) -> str:
        return f"Residual: layer {index} ({type(self.layers[index]).__name__})"

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        for index, layer in enumerate(self.layers):
            try:
                shape = tuple(layer.compute_output_shape(shape))
            except (ValueError, TypeError) as error:
                raise type(error)(f"{self._where(index)}: {error}") from None
        if shape != tuple(input_shape):
            raise ValueError(f"Residual: its layers turn samples of shape {tuple(input_shape)} "
                             f"into {shape}; y = x + f(x) needs the same shape")
        return tuple(input_shape)

    def build(self, input_shape: Sequence[int]) -> None:
        self.compute_output_shape(tuple(input_shape))
        shape = tuple(int(d) for d in input_shape)
        for index, layer in enumerate(self.layers):
            layer.dtype = self.dtype
            layer.rng = self.rng
            try:
                layer.build(shape)
            except (ValueError, TypeError) as error:
                raise type(error)(f"{self._where(index)}: {error}") from None
            shape = tuple(layer._built_output_shape())
        self.params = [p for layer in self.layers for p in layer.params]
        self.grads = [g for layer in self.layers for g in layer.grads]
        self.state = [s for layer in self.layers for s in layer.state]
        super().build(input_shape)

    def native_ops(self) -> Optional[list]:
        if not self.built:
            return None
        inner = []
        for layer in self.layers:
            ops = layer.native_ops()
            if ops is None:
                return None
            inner.extend(ops)
        return self.wrap_ops(inner)

    def wrap_ops(self, inner: list) -> list:
        """`inner` (the ops of f, in plan order) between the two ops of the
        skip connection."""
        size = int(np.prod(self._built_input_shape(), dtype=np.int64))
        span = len(inner) + 1
        return [ResidualOp(self.dtype, size, span, False), *inner,
                ResidualOp(self.dtype, size, span, True)]

    def penalty_ops(self) -> list:
        return [p for layer in self.layers for p in layer.penalty_ops()]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if not self.built:
            self.build(x.shape[1:])
        out = x
        for layer in self.layers:
            out = layer.forward(out, training)
        return x.astype(self.dtype, copy=False) + out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = np.asarray(dy, self.dtype)
        grad = dy
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return dy + grad

    def get_config(self) -> dict:
        entries = [{"class": registry.registered_name("layer", layer),
                    "config": layer.get_config()} for layer in self.layers]
        return {"layers": entries, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "Residual":
        config = dict(config)
        entries = config.pop("layers", None)
        if not isinstance(entries, list):
            raise ValueError("'layers' must be a list of {'class', 'config'} entries")
        if _nesting(entries) > MAX_NESTING:
            raise ValueError(f"Residual blocks nest more than {MAX_NESTING} deep")
        from ..saving import _class_entry, _construct
        layers = []
        for index, entry in enumerate(entries):
            name, layer_config = _class_entry(entry, f"Residual layer {index}")
            layer_cls = registry.lookup("layer", name)
            layers.append(_construct(layer_cls, layer_config, f"Residual layer {index} ({name})"))
        return cls(*layers, **config)

    def weight_shapes(self, input_shape: Shape):
        shape = tuple(input_shape)
        self.compute_output_shape(shape)
        shapes = []
        for layer in self.layers:
            own = layer.weight_shapes(shape)
            if own is None or isinstance(layer, BatchNormalization):
                return None          # its state would sit between the params: unknown
            shapes.extend(own)
            shape = tuple(layer.compute_output_shape(shape))
        return shapes

    def __repr__(self) -> str:
        return "Residual(" + ", ".join(repr(layer) for layer in self.layers) + ")"


def _nesting(entries, depth: int = 1) -> int:
    """How deep Residual entries nest in a list of saved layer entries."""
    deepest = depth
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("config"), dict):
            inner = entry["config"].get("layers")
            if isinstance(inner, list):
                if depth >= MAX_NESTING:
                    return depth + 1
                deepest = max(deepest, _nesting(inner, depth + 1))
    return deepest
