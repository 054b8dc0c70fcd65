"""Activation layers: `Activation(name)`, `Tanh`, `Sigmoid`, `ReLU`,
`LeakyReLU`, `Softmax` (nncore.article adds `ActivationLayer(f, f_prime)`)."""
from __future__ import annotations

import inspect
from typing import Any, Optional, Tuple, Union

import numpy as np

from .._native.activation import KINDS, ActivationOp
from ..errors import unknown_name
from .base import NativeLayer

# the activation names: those the native kernel knows
ACTIVATION_NAMES = frozenset(KINDS)
# those an op's epilogue can apply in place (element-wise, non-decreasing)
EPILOGUE = frozenset({"identity", "linear", "relu", "leaky_relu", "tanh", "sigmoid"})
LEAKY_RELU_ALPHA = 0.01     # the default slope of leaky_relu for x < 0


def check_alpha(layer, alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise TypeError(f"{type(layer).__name__}: alpha must be a number >= 0 (the slope for "
                        f"negative inputs), got {alpha!r}")
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"{type(layer).__name__}: alpha must be a finite number >= 0, got {alpha!r}")
    return float(alpha)


class Activation(NativeLayer):
    """An element-wise activation by name ('tanh', 'sigmoid', 'relu',
    'leaky_relu', 'softmax', 'identity'); softmax works on the last axis.

    Parameters
    ----------
    activation : str
        The activation's name.
    alpha : float, default 0.01
        The slope of 'leaky_relu' below zero (unused by the others).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If the name is unknown or alpha is out of range.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Activation("relu")], input_shape=(3,))
    >>> net.predict(np.array([[-1.0, 0.0, 2.0]], dtype=np.float32))
    array([[0., 0., 2.]], dtype=float32)
    """

    def __init__(self, activation: str, alpha: float = LEAKY_RELU_ALPHA,
                 name: Optional[str] = None):
        super().__init__(name)
        if activation not in ACTIVATION_NAMES:
            raise ValueError(f"{type(self).__name__}: "
                             f"{unknown_name('activation', activation, ACTIVATION_NAMES)}")
        self.activation = activation
        self.alpha = check_alpha(self, alpha)

    def make_ops(self) -> list:
        shape = self._built_input_shape()
        size = int(np.prod(shape, dtype=np.int64))
        width = shape[-1] if shape else 1
        return [ActivationOp(self.activation, self.dtype, size, width, self.alpha)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.activation!r})"

    def get_config(self) -> dict:
        # the subset of (activation, alpha, name) this class's constructor takes
        takes = inspect.signature(type(self).__init__).parameters
        return {key: getattr(self, key) for key in ("activation", "alpha", "name")
                if key in takes}

    def weight_shapes(self, input_shape):
        return []


class Tanh(Activation):
    """The hyperbolic tangent, element-wise: ``tanh(x)``.

    Parameters
    ----------
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Tanh()], input_shape=(2,))
    >>> net.predict(np.array([[0.0, 1.0]])).round(4)
    array([[0.    , 0.7616]], dtype=float32)
    """

    def __init__(self, name: Optional[str] = None):
        super().__init__("tanh", name=name)


class Sigmoid(Activation):
    """The logistic sigmoid, element-wise: ``1 / (1 + exp(-x))``.

    Parameters
    ----------
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Sigmoid()], input_shape=(2,))
    >>> net.predict(np.array([[0.0, 2.0]])).round(4)
    array([[0.5   , 0.8808]], dtype=float32)
    """

    def __init__(self, name: Optional[str] = None):
        super().__init__("sigmoid", name=name)


class ReLU(Activation):
    """The rectified linear unit, element-wise: ``max(x, 0)``.

    Parameters
    ----------
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.ReLU()], input_shape=(3,))
    >>> net.predict(np.array([[-1.0, 0.0, 2.0]]))
    array([[0., 0., 2.]], dtype=float32)
    """

    def __init__(self, name: Optional[str] = None):
        super().__init__("relu", name=name)


class LeakyReLU(Activation):
    """The leaky rectified linear unit, element-wise: ``x`` for ``x >= 0``,
    ``alpha * x`` below.

    Parameters
    ----------
    alpha : float, default 0.01
        The slope for negative inputs, a finite number >= 0.
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    TypeError
        If `alpha` is not a number.
    ValueError
        If `alpha` is negative or not finite.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.LeakyReLU(alpha=0.1)], input_shape=(2,))
    >>> net.predict(np.array([[-2.0, 3.0]]))
    array([[-0.2,  3. ]], dtype=float32)
    """

    def __init__(self, alpha: float = LEAKY_RELU_ALPHA, name: Optional[str] = None):
        super().__init__("leaky_relu", alpha=alpha, name=name)


class Softmax(Activation):
    """The softmax over the last axis: ``exp(x) / sum(exp(x))``, so that each
    row is a probability distribution.

    Parameters
    ----------
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Softmax()], input_shape=(3,))
    >>> net.predict(np.array([[1.0, 1.0, 1.0]])).round(4)
    array([[0.3333, 0.3333, 0.3333]], dtype=float32)
    """

    def __init__(self, name: Optional[str] = None):
        super().__init__("softmax", name=name)


ActivationSpec = Union[None, str, Activation, dict]


def fused_activation(layer, activation: ActivationSpec) -> Tuple[Optional[str], float]:
    """(name, alpha) of the activation a Dense or Conv2D layer applies to its
    output: None, a name, an `Activation` layer such as LeakyReLU(0.2), or
    the {"name": ..., "alpha": ...} form its config uses."""
    if activation is None:
        return None, LEAKY_RELU_ALPHA
    if isinstance(activation, dict) and set(activation) == {"name", "alpha"}:
        return fused_activation(layer, Activation(activation["name"], activation["alpha"]))
    if isinstance(activation, Activation) and getattr(activation, "fusable", True):
        return activation.activation, activation.alpha
    if isinstance(activation, str) and activation in ACTIVATION_NAMES:
        return activation, LEAKY_RELU_ALPHA
    hint = " or pass an Activation layer such as LeakyReLU(0.2)"
    raise ValueError(f"{type(layer).__name__}: "
                     f"{unknown_name('activation', activation, ACTIVATION_NAMES, hint)}")


def activation_config(name: Optional[str], alpha: float) -> Any:
    """The JSON form of a fused activation: its name, with alpha when it matters."""
    if name == "leaky_relu" and alpha != LEAKY_RELU_ALPHA:
        return {"name": name, "alpha": alpha}
    return name


def epilogue_kind(activation: Optional[Tuple[str, float]]) -> Tuple[int, float]:
    """The native (kind, alpha) of an epilogue activation (name, alpha) or None."""
    if activation is None:
        return KINDS["identity"], 0.0
    return KINDS[activation[0]], activation[1]


def epilogue_activation(layer) -> Optional[Tuple[str, float]]:
    """(name, alpha) when `layer` is a native activation an epilogue can
    apply, else None."""
    if (not isinstance(layer, Activation) or layer.activation not in EPILOGUE
            or type(layer).make_ops is not Activation.make_ops):
        return None
    if not getattr(layer, "is_native", True):      # the article's Python functions
        return None
    return layer.activation, layer.alpha


def own_gradients(layer, weights):
    """The gradient arrays for an op over `weights` (kernel, bias): the
    layer's own when they are the layer's parameters, else throw-away arrays
    (ops over folded weights only run inference)."""
    if weights[0] is layer.params[0]:
        return layer.grads[0], (layer.grads[1] if len(layer.grads) > 1 else None)
    return np.zeros_like(weights[0]), (None if weights[1] is None
                                       else np.zeros_like(weights[1]))
