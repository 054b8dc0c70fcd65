"""The article's style of neural network, in one place.

"Neural Network from scratch in Python" builds networks from `FCLayer`,
`ActivationLayer(f, f_prime)`, `ConvLayer` and `FlattenLayer`, trains them
with a loss given as two functions (`use(mse, mse_prime)`) one sample at a
time, and prints `epoch i/N   error=...` after each epoch.  This module holds
those classes, the loss-functions adapter, and the rule that picks the
article's training style for a network (`training_style`): a default batch
size of one and the error line, chosen once per fit.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np

from . import activations as functions
from . import initializers
from ._progress import Progress
from . import losses
from .losses import MSE, Loss, mse, mse_prime
from .layers.activation import Activation
from .layers.base import Shape
from .layers.conv import Conv2D
from .layers.dense import Dense
from .layers.reshape import Flatten
from .layers._window import image_shape


# ------------------------------------------------------------------ layers
class FCLayer(Dense):
    """The article's fully connected layer: FCLayer(input_size, output_size).

    Sizes may also be given as the article's older (1, n) shapes.  Weights
    use Glorot initialization (the article's uniform [-0.5, 0.5) saturates
    tanh on wide inputs); pass `kernel_initializer='uniform'` for the original.

    Parameters
    ----------
    input_size : int or (1, int)
        The number of inputs of each sample.
    output_size : int or (1, int)
        The number of outputs.
    kernel_initializer : str, default "glorot_uniform"
        How the weights are drawn (a name of `nncore.initializers`).
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.FCLayer(2, 3), nncore.FCLayer(3, 1)],
    ...                      input_shape=(1, 2), seed=0)
    >>> net.predict(np.zeros((4, 1, 2), dtype=np.float32)).shape
    (4, 1, 1)
    """

    def __init__(self, input_size: Union[int, Sequence[int]], output_size: Union[int, Sequence[int]],
                 kernel_initializer="glorot_uniform", name: Optional[str] = None):
        super().__init__(_last(output_size), input_size=_last(input_size),
                         kernel_initializer=kernel_initializer, name=name)

    def __repr__(self) -> str:
        return f"FCLayer({self.input_size}, {self.units})"

    def get_config(self) -> dict:
        return {"input_size": self.input_size, "output_size": self.units,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "name": self.name}



def _last(size):
    return size[-1] if isinstance(size, (tuple, list)) else size


# the article's functions that have a native kernel
NATIVE_PAIRS = {(functions.tanh, functions.tanh_prime): "tanh",
                  (functions.sigmoid, functions.sigmoid_prime): "sigmoid",
                  (functions.relu, functions.relu_prime): "relu"}


class ActivationLayer(Activation):
    """The article's activation layer: ActivationLayer(activation, activation_prime).

    nncore's own `nncore.activations` functions run natively; any other pair
    of Python functions f(x), f_prime(x) runs in Python.  The article's older
    form ActivationLayer(shape, f, f_prime) is accepted too.

    Parameters
    ----------
    activation, activation_prime : callable
        The activation and its derivative, element-wise on arrays (given
        by position, optionally after a shape).
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> from nncore.activations import tanh, tanh_prime
    >>> layer = nncore.ActivationLayer(tanh, tanh_prime)
    >>> net = nncore.Network([nncore.FCLayer(2, 3), layer], input_shape=(1, 2), seed=0)
    >>> net.predict(np.zeros((1, 1, 2), dtype=np.float32))
    array([[[0., 0., 0.]]], dtype=float32)
    """

    fusable = False     # not an activation= of Dense or Conv2D

    def __init__(self, *args, name: Optional[str] = None):
        if len(args) == 3:
            args = args[1:]
        if len(args) != 2 or not all(callable(f) for f in args):
            raise TypeError("ActivationLayer takes (activation, activation_prime) functions")
        self.function: Callable = args[0]
        self.function_prime: Callable = args[1]
        native = NATIVE_PAIRS.get((self.function, self.function_prime))
        super().__init__(native or "identity", name=name)
        self.is_native = native is not None

    def native_ops(self) -> Optional[list]:
        return super().native_ops() if self.is_native else None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if self.is_native:
            return super().forward(x, training)
        if not self.built:
            self.build(np.shape(x)[1:])
        self._x = np.asarray(x)
        return np.asarray(self.function(self._x), dtype=self.dtype)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.is_native:
            return super().backward(dy)
        return np.asarray(self.function_prime(self._x) * dy, dtype=self.dtype)

    def get_config(self) -> dict:
        if not self.is_native:
            raise ValueError("ActivationLayer with arbitrary Python functions cannot be "
                             "saved; use Activation(name) or a registered Layer subclass")
        return {"activation": self.activation, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "ActivationLayer":
        config = dict(config)
        activation = config.pop("activation", None)
        pairs = {name: pair for pair, name in NATIVE_PAIRS.items()}
        if activation not in pairs:
            raise ValueError(f"ActivationLayer: activation must be one of "
                             f"{sorted(pairs)}, got {activation!r}")
        return cls(*pairs[activation], **config)

    def __repr__(self) -> str:
        name = getattr(self.function, "__name__", "custom")
        return f"ActivationLayer({name})"


class ConvLayer(Conv2D):
    """The article's convolution layer: ConvLayer(input_shape, kernel_shape, layer_depth).

    Stride 1, no padding; samples are (h, w, d) arrays and the output is
    (h - kh + 1, w - kw + 1, layer_depth).  Unlike the article's own code, the
    bias is added once per output value and its gradient is the plain sum of
    the output gradient (the article adds it once per input channel but scales
    its gradient by the number of output channels).  Weights use Glorot
    initialization; pass `kernel_initializer='uniform'` for the article's.

    Parameters
    ----------
    input_shape : (int, int, int)
        The (h, w, d) shape of each sample.
    kernel_shape : (int, int)
        The window's height and width.
    layer_depth : int
        The number of output channels.
    kernel_initializer : str, default "glorot_uniform"
        How the kernel is drawn (a name of `nncore.initializers`).
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.ConvLayer((6, 5, 1), (3, 3), 2),
    ...                       nncore.FlattenLayer()], input_shape=(6, 5, 1), seed=0)
    >>> net.predict(np.zeros((4, 6, 5, 1), dtype=np.float32)).shape
    (4, 1, 24)
    """

    def __init__(self, input_shape: Sequence[int], kernel_shape, layer_depth: int,
                 kernel_initializer="glorot_uniform", name: Optional[str] = None):
        super().__init__(layer_depth, kernel_shape, kernel_initializer=kernel_initializer,
                         name=name)
        self.expected_input = image_shape(self, tuple(input_shape))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if tuple(input_shape) != self.expected_input:
            raise ValueError(f"{type(self).__name__}: expected input of shape "
                             f"{(None,) + self.expected_input}, received "
                             f"{(None,) + tuple(input_shape)}")
        return super().compute_output_shape(input_shape)

    def get_config(self) -> dict:
        return {"input_shape": list(self.expected_input),
                "kernel_shape": list(self.kernel_size), "layer_depth": self.filters,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "name": self.name}

    def __repr__(self) -> str:
        return f"ConvLayer({self.expected_input}, {self.kernel_size}, {self.filters})"


class FlattenLayer(Flatten):
    """The article's flatten layer: each sample becomes a (1, h*w*d) row,
    ready for the article's FCLayer.

    Parameters
    ----------
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.FlattenLayer(), nncore.FCLayer(12, 2)],
    ...                      input_shape=(2, 3, 2), seed=0)
    >>> net.predict(np.zeros((5, 2, 3, 2), dtype=np.float32)).shape
    (5, 1, 2)
    """

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (1,) + super().compute_output_shape(input_shape)


# ------------------------------------------------------------------ loss
class FunctionLoss:
    """A loss given as two Python functions loss(y_true, y_pred) and
    loss_prime(y_true, y_pred), as in the article.  Runs in Python."""

    sparse = False

    def __init__(self, loss: Callable, loss_prime: Callable):
        self.function = loss
        self.function_prime = loss_prime

    def __call__(self, y_true, y_pred) -> float:
        return float(self.function(y_true, y_pred))

    def gradient(self, y_true, y_pred) -> np.ndarray:
        return np.asarray(self.function_prime(y_true, y_pred))

    def __repr__(self) -> str:
        return f"FunctionLoss({getattr(self.function, '__name__', 'custom')})"


def use_loss(loss, loss_prime: Optional[Callable]) -> tuple:
    """(the loss of `Network.use(loss, loss_prime)`, whether it was given as
    functions): a name or Loss as nncore.losses.get reads it; functions as
    the native MSE for nncore's own `mse` (and `mse_prime`), else a
    FunctionLoss."""
    if isinstance(loss, (Loss, FunctionLoss)):
        return loss, False
    if not callable(loss):
        return losses.get(loss), False
    if loss is mse and loss_prime in (mse_prime, None):
        return MSE(), True
    if loss_prime is None or not callable(loss_prime):
        raise TypeError("a loss given as a function needs its derivative too: "
                        "use(loss, loss_prime)")
    return FunctionLoss(loss, loss_prime), True


# -------------------------------------------------------------- the style
class ModernStyle:
    """Training as in Keras: batches of 32 by default, a progress bar (one
    line per epoch when the output is not a terminal, or with verbose=2)."""

    batch_size = 32

    @staticmethod
    def printer(verbose: int, epochs: int, steps: Optional[int]):
        return Progress(verbose, epochs, steps) if verbose else None


class ArticleStyle:
    """The article's training: one sample per step by default, and the
    `epoch i/N   error=...` line after each epoch (followed by the metrics
    and validation figures, if any)."""

    batch_size = 1

    @staticmethod
    def printer(verbose: int, epochs: int, steps: Optional[int]):
        return ErrorLine(epochs) if verbose else None


class ErrorLine:
    """The article's `epoch i/N   error=...` line; it needs no hook inside
    an epoch, so epochs may be printed after they ran."""

    live = False
    needs_epochs = False

    def __init__(self, epochs: int):
        self.epochs = epochs

    def epoch_begin(self, epoch: int) -> None:
        pass

    def update(self, done: int, samples: int, logs: dict) -> None:
        pass

    def training_done(self) -> None:
        pass

    def epoch_end(self, epoch: int, samples: int, logs: dict, steps=None) -> None:
        others = "".join(f"   {key}={value:f}" for key, value in logs.items()
                         if key not in ("loss", "learning_rate"))
        print("epoch %d/%d   error=%f%s" % (epoch + 1, self.epochs, logs["loss"], others))


def training_style(net):
    """ArticleStyle when the loss was given as functions, as in
    `use(mse, mse_prime)`, or every layer is one of the article's classes;
    ModernStyle otherwise."""
    classes = (FCLayer, ActivationLayer, ConvLayer, FlattenLayer)
    if net.loss_from_functions or isinstance(net.loss, FunctionLoss) or (
            net.layers and all(isinstance(layer, classes) for layer in net.layers)):
        return ArticleStyle
    return ModernStyle
