"""The Layer base class and the base of layers that run in the native core."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from .._native.plan import Plan

Shape = Tuple[int, ...]


class Layer:
    """A layer: `forward(x, training)` -> y and `backward(dy)` -> dx.

    Arrays are batch first: x has shape (n,) + input_shape.  `backward` fills
    `grads` (same shapes as `params`) with the gradient of the loss w.r.t. the
    live parameter arrays in `params`.  Subclass it in pure Python/NumPy to
    write your own layer; the network then runs such layers one by one.
    """

    def __init__(self, name: Optional[str] = None):
        self.name = name
        self.params: List[np.ndarray] = []
        self.grads: List[np.ndarray] = []
        self.input_shape: Optional[Shape] = None
        self.output_shape: Optional[Shape] = None
        self.built = False
        self.dtype = np.dtype("float32")
        self.rng: np.random.Generator = np.random.default_rng()

    def build(self, input_shape: Sequence[int]) -> None:
        """Create the weights for samples of `input_shape` (batch axis excluded)."""
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def native_ops(self) -> Optional[list]:
        """The native ops that compute this layer, or None for a Python layer."""
        return None

    def count_params(self) -> int:
        return int(sum(p.size for p in self.params))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NativeLayer(Layer):
    """A layer computed by native ops.  Subclasses create their parameters in
    `build` and return their ops from `make_ops`; `forward`/`backward` on the
    layer alone run those ops through a private one-layer plan."""

    def build(self, input_shape: Sequence[int]) -> None:
        super().build(input_shape)
        self._ops = self.make_ops()
        self._plan: Optional[Plan] = None
        self._batch = 0

    def make_ops(self) -> list:
        raise NotImplementedError

    def native_ops(self) -> Optional[list]:
        return self._ops if self.built else None

    def _checked(self, array, shape: Shape, what: str) -> np.ndarray:
        array = np.ascontiguousarray(array, dtype=self.dtype)
        if array.shape[1:] != shape:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape "
                             f"{(None,) + shape}, received {array.shape}")
        return array

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not self.built:
            self.build(np.shape(x)[1:])
        x = self._checked(x, self.input_shape, "input")
        if self._plan is None:
            self._plan = Plan(self._ops, self.dtype)
        n = x.shape[0]
        self._batch = n
        y = self._plan.forward(x.reshape(n, -1), training)
        return y.reshape((n,) + self.output_shape).copy()

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._plan is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        dy = self._checked(dy, self.output_shape, "output gradient")
        if dy.shape[0] != self._batch:
            raise ValueError(f"{type(self).__name__}: the output gradient has "
                             f"{dy.shape[0]} samples, the last forward had {self._batch}")
        dx = self._plan.backward(dy.reshape(self._batch, -1))
        return dx.reshape((self._batch,) + self.input_shape).copy()
