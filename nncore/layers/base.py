"""The Layer base class and the base of layers that run in the native core."""
from __future__ import annotations

import inspect
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from .. import _budget
from .._data import as_float_array
from .._native.plan import Plan
from ..registry import auto_register, register

Shape = Tuple[int, ...]


class Layer:
    """A layer: `forward(x, training)` -> y and `backward(dy)` -> dx.

    Arrays are batch first: x has shape (n,) + input_shape.  `backward` fills
    `grads` (same shapes as `params`) with the gradient of the loss w.r.t. the
    live parameter arrays in `params`.  Subclass it in pure Python/NumPy to
    write your own layer; the network then runs such layers one by one.

    Parameters
    ----------
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> class Double(nncore.Layer):
    ...     def forward(self, x, training=False):
    ...         return 2 * x
    ...     def backward(self, dy):
    ...         return 2 * dy
    >>> net = nncore.Network([nncore.Dense(2), Double()], input_shape=(3,), seed=0)
    >>> net.predict(np.ones((4, 3), dtype=np.float32)).shape
    (4, 2)
    """

    #: the network holding this layer (a weak reference), set by Network.add
    _network: Optional[Callable[[], Any]] = None

    def __init__(self, name: Optional[str] = None):
        self.name = name
        self.params: List[np.ndarray] = []
        self.grads: List[np.ndarray] = []
        self.state: List[np.ndarray] = []   # non-trained arrays that are saved too
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

    # internal: the shapes of a built layer (input_shape/output_shape are None
    # only before build, so callers that run after build use these)
    def _built_input_shape(self) -> Shape:
        assert self.input_shape is not None, f"{type(self).__name__} is not built"
        return self.input_shape

    def _built_output_shape(self) -> Shape:
        assert self.output_shape is not None, f"{type(self).__name__} is not built"
        return self.output_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def native_ops(self) -> Optional[list]:
        """The native ops that compute this layer, or None for a Python layer."""
        return None

    def penalty_ops(self) -> list:
        """The native weight penalties (regularizers) on this layer's params."""
        return getattr(self, "_penalties", [])

    def count_params(self) -> int:
        return int(sum(p.size for p in self.params))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # ------------------------------------------------------------ saving
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        auto_register("layer", cls)

    def get_config(self) -> dict:
        """The constructor arguments as JSON values: `type(self)(**config)`
        rebuilds the layer (without its weights).  Layers whose constructor
        takes more than `name` must override this."""
        extra = [p for p in inspect.signature(type(self).__init__).parameters
                 if p not in ("self", "name")]
        if extra:
            raise NotImplementedError(f"{type(self).__name__} takes {extra} and must "
                                      f"implement get_config() to be saved")
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        return cls(**config)

    def weight_shapes(self, input_shape: Shape) -> Optional[List[Shape]]:
        """The shapes of params + state that build(input_shape) creates, or
        None when unknown.  Loading checks a file against them before
        building, so a hostile file cannot make it allocate unbounded memory."""
        return [] if type(self).build in (Layer.build, NativeLayer.build) else None

    def get_weights(self) -> List[np.ndarray]:
        """Copies of the parameters followed by the state arrays."""
        return [np.array(a, copy=True) for a in list(self.params) + list(self.state)]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Copy arrays into the parameters and state (in place), checking
        count, shape and dtype (real numbers, cast to each array's dtype)."""
        checked = self.check_weights(weights)
        for target, value in zip(list(self.params) + list(self.state), checked):
            np.copyto(target, value, casting="same_kind")

    def check_weights(self, weights: Sequence[np.ndarray]) -> List[np.ndarray]:
        """`weights` as arrays after checking them against params + state."""
        name = type(self).__name__
        if not self.built:
            raise RuntimeError(f"{name}: set_weights needs a built layer")
        targets = list(self.params) + list(self.state)
        weights = list(weights)
        if len(weights) != len(targets):
            raise ValueError(f"{name}: expected {len(targets)} weight arrays, "
                             f"received {len(weights)}")
        checked = []
        for i, (target, value) in enumerate(zip(targets, weights)):
            value = np.asarray(value)
            if not np.can_cast(value.dtype, target.dtype, "same_kind"):
                raise TypeError(f"{name}: weight {i} expected dtype {target.dtype}, "
                                f"received {value.dtype}")
            if value.shape != target.shape:
                raise ValueError(f"{name}: weight {i} expected shape {target.shape}, "
                                 f"received {value.shape}")
            checked.append(value)
        return checked


class NativeLayer(Layer):
    """A layer computed by native ops.  Subclasses create their parameters in
    `build` and return their ops from `make_ops`; `forward`/`backward` on the
    layer alone run those ops through a private one-layer plan.

    Parameters
    ----------
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    Every built-in layer with a native kernel is one; used alone, it runs
    its ops through a one-layer plan:

    >>> import numpy as np, nncore
    >>> layer = nncore.Dense(2)
    >>> isinstance(layer, nncore.layers.NativeLayer)
    True
    >>> layer.build((3,))
    >>> layer.forward(np.ones((4, 3), dtype=np.float32)).shape
    (4, 2)
    """

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
        array = as_float_array(array, self.dtype, f"{type(self).__name__}: {what}",
                               finite=False)
        if array.shape[1:] != shape:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape "
                             f"{(None,) + shape}, received {array.shape}")
        return array

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = as_float_array(x, self.dtype, f"{type(self).__name__}: input", finite=False)
        if not self.built:
            self.build(x.shape[1:])
        x = self._checked(x, self._built_input_shape(), "input")   # no copy: already converted
        if self._plan is None:
            self._plan = Plan(self._ops, self.dtype, _budget.check)
        n = x.shape[0]
        self._batch = n
        y = self._plan.forward(x.reshape(n, -1), training)
        return y.reshape((n,) + self._built_output_shape()).copy()

    def backward(self, dy: np.ndarray) -> np.ndarray:
        plan = getattr(self, "_plan", None)
        if plan is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        dy = self._checked(dy, self._built_output_shape(), "output gradient")
        if dy.shape[0] != self._batch:
            raise ValueError(f"{type(self).__name__}: the output gradient has "
                             f"{dy.shape[0]} samples, the last forward had {self._batch}")
        dx = plan.backward(dy.reshape(self._batch, -1))
        return dx.reshape((self._batch,) + self._built_input_shape()).copy()


def register_layer(cls: Optional[type] = None, *, name: Optional[str] = None):
    """Make a Layer subclass savable: `@nncore.register_layer` (or
    `@nncore.register_layer(name="MyLayer")`).  The class needs a
    `get_config()` giving its constructor arguments as JSON values.

    Parameters
    ----------
    cls : type, optional
        The class, when used as ``@register_layer`` without arguments.
    name : str, optional
        The name saved files use for the class (default: its ``__name__``).

    Returns
    -------
    type or callable
        The class itself, or (with only `name`) a decorator.

    Raises
    ------
    TypeError
        If the class is not a subclass of `nncore.Layer`.
    ValueError
        If the name is not an identifier or already names another class.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> @nncore.register_layer(name="DocsExampleNegate")
    ... class Negate(nncore.Layer):
    ...     def forward(self, x, training=False):
    ...         return -x
    ...     def backward(self, dy):
    ...         return -dy
    >>> net = nncore.Network([Negate()], input_shape=(2,))
    >>> net.save("negate.nnc")
    >>> nncore.load("negate.nnc").layers
    [Negate()]
    """
    def decorate(klass):
        if not (isinstance(klass, type) and issubclass(klass, Layer)):
            raise TypeError(f"register_layer takes a subclass of nncore.Layer, got {klass!r}")
        return register("layer", klass, name)
    return decorate if cls is None else decorate(cls)
