"""Losses.  Each returns the mean over the batch (and over elements or rows),
as Keras does; per-sample weights w make it sum_i w_i loss_i / n.  The article's `mse` / `mse_prime` functions are here too;
passing them to `Network.use` selects the native MSE kernel."""
from __future__ import annotations

from typing import Union

import numpy as np

from ._data import as_float_array
from ._weights import check_sample_weight
from ._native.loss import LossOp
from ._native.loss import evaluate_loss
from .errors import unknown_name
from .registry import auto_register


class Loss:
    """Base of the native losses: `loss(y_true, y_pred)` gives the mean loss,
    `loss.gradient(y_true, y_pred)` its gradient w.r.t. y_pred.  Arrays are
    batch first and y_true has the network output's shape (sparse losses:
    integer class labels, one per row of class scores).

    Parameters
    ----------
    from_logits : bool, default False
        Whether the network outputs scores (the loss then applies the sigmoid or softmax
        itself, stably) rather than probabilities.

    Examples
    --------
    The built-in losses are subclasses; a network takes one by object or name:

    >>> import nncore
    >>> isinstance(nncore.losses.MSE(), nncore.losses.Loss)
    True
    >>> net = nncore.Network([nncore.Dense(1)], input_shape=(2,)).use(nncore.losses.MSE())
    """

    kernel = ""
    sparse = False

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        auto_register("loss", cls)

    def get_config(self) -> dict:
        """Constructor arguments as JSON values (for saving)."""
        return {"from_logits": self.from_logits}

    @classmethod
    def from_config(cls, config: dict) -> "Loss":
        return cls(**config)

    @property
    def name(self) -> str:
        return type(self).__name__

    def native(self, dtype, size: int, width: int) -> LossOp:
        """The native loss for predictions of `size` values per sample,
        `width` of them on the class (last) axis."""
        return LossOp(self.kernel, np.dtype(dtype), size, width, self.sparse)

    def _evaluate(self, y_true, y_pred, want_gradient: bool, sample_weight=None):
        y_pred = np.asarray(y_pred)
        dtype = y_pred.dtype if y_pred.dtype in (np.float32, np.float64) else np.float64
        pred = as_float_array(np.atleast_1d(y_pred), dtype, f"{self.name}: y_pred",
                              finite=False)
        n = pred.shape[0] if pred.ndim > 1 else 1
        pred2 = pred.reshape(n, -1)
        width = pred.shape[-1]
        op = self.native(dtype, pred2.shape[1], width)
        target = self._checked_target(y_true, pred, n, dtype)
        grad = np.empty_like(pred2) if want_gradient else None
        weights = (None if sample_weight is None else
                   check_sample_weight(sample_weight, n, dtype, f"{self.name}: sample_weight"))
        value = evaluate_loss(op, pred2, target, grad, weights)
        return value, (grad.reshape(pred.shape) if grad is not None else None)

    def _checked_target(self, y_true, pred, n: int, dtype) -> np.ndarray:
        # the kernels trust these sizes (and label ranges): check them here
        target = as_float_array(np.atleast_1d(y_true), dtype, f"{self.name}: y_true",
                                finite=False)
        if self.sparse:
            width = pred.shape[-1]
            expected = pred.shape[:-1] if pred.ndim > 1 else (1,)
            if target.size != int(np.prod(expected)):
                raise ValueError(f"{self.name}: expected one class label per row of "
                                 f"y_pred, shape {expected}, received {target.shape}")
            if (target != np.round(target)).any() or target.min() < 0 or \
                    target.max() >= width:
                raise ValueError(f"{self.name}: labels must be integers in [0, {width}), "
                                 f"found {target.min():g}..{target.max():g}")
        elif target.size != pred.size:
            raise ValueError(f"{self.name}: expected y_true of shape {pred.shape} like "
                             f"y_pred, received {target.shape}")
        return target.reshape(n, -1)

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """The mean loss; with sample_weight (n,), sum_i w_i loss_i / n."""
        return self._evaluate(y_true, y_pred, False, sample_weight)[0]

    def gradient(self, y_true, y_pred, sample_weight=None) -> np.ndarray:
        return self._evaluate(y_true, y_pred, True, sample_weight)[1]

    def __repr__(self) -> str:
        return f"{self.name}(from_logits={self.from_logits})" if self.kernel != "mse" else "MSE()"


class MSE(Loss):
    """Mean squared error: the mean of (y_pred - y_true)**2 over all values.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> loss = nncore.losses.MSE()
    >>> y_true, y_pred = np.array([[1.0, 2.0]]), np.array([[1.5, 2.0]])
    >>> print(loss(y_true, y_pred))
    0.125
    >>> loss.gradient(y_true, y_pred)
    array([[0.5, 0. ]])
    """
    kernel = "mse"

    def __init__(self):
        super().__init__(False)

    def get_config(self) -> dict:
        return {}


class BinaryCrossentropy(Loss):
    """Binary cross-entropy of probabilities, or of logits with from_logits=True.

    Parameters
    ----------
    from_logits : bool, default False
        Whether the network outputs logits (the loss then applies the sigmoid
        itself, stably) rather than probabilities.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> loss = nncore.losses.BinaryCrossentropy()
    >>> print(round(float(loss(np.array([[1.0], [0.0]]), np.array([[0.9], [0.2]]))), 6))
    0.164252
    """

    @property
    def kernel(self):
        return "binary_crossentropy_logits" if self.from_logits else "binary_crossentropy"


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot rows; from_logits=True applies a stable
    log-softmax to the scores (fused softmax + cross-entropy).

    Parameters
    ----------
    from_logits : bool, default False
        Whether the network outputs scores (the loss then applies the softmax
        itself, stably) rather than probabilities.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> loss = nncore.losses.CategoricalCrossentropy(from_logits=True)
    >>> print(round(float(loss(np.array([[0.0, 1.0]]), np.array([[0.0, 0.0]]))), 6))  # log 2
    0.693147
    """

    @property
    def kernel(self):
        return "softmax_crossentropy" if self.from_logits else "categorical_crossentropy"


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Categorical cross-entropy against integer class labels.

    Parameters
    ----------
    from_logits : bool, default False
        Whether the network outputs scores (the loss then applies the softmax
        itself, stably) rather than probabilities.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> loss = nncore.losses.SparseCategoricalCrossentropy(from_logits=True)
    >>> print(round(float(loss(np.array([1]), np.array([[0.0, 0.0]]))), 6))  # log 2
    0.693147
    """
    sparse = True


def mse(y_true, y_pred):
    """The article's mean squared error.

    Parameters
    ----------
    y_true, y_pred : array_like
        The targets and the predictions, of one shape.

    Returns
    -------
    float
        The mean of (y_true - y_pred)**2.

    Examples
    --------
    >>> from nncore.losses import mse
    >>> print(mse([1, 2], [1, 4]))
    2.0
    """
    return np.mean(np.power(np.asarray(y_true) - np.asarray(y_pred), 2))


def mse_prime(y_true, y_pred):
    """The article's MSE gradient w.r.t. y_pred.

    Parameters
    ----------
    y_true, y_pred : array_like
        The targets and the predictions, of one shape.

    Returns
    -------
    ndarray
        2 * (y_pred - y_true) / y_true.size.

    Examples
    --------
    >>> from nncore.losses import mse_prime
    >>> mse_prime([1, 2], [1, 4])
    array([0., 2.])
    """
    y_true = np.asarray(y_true)
    return 2 * (np.asarray(y_pred) - y_true) / y_true.size


_BY_NAME = {"mse": MSE, "mean_squared_error": MSE,
            "binary_crossentropy": BinaryCrossentropy,
            "categorical_crossentropy": CategoricalCrossentropy,
            "sparse_categorical_crossentropy": SparseCategoricalCrossentropy}


def get(identifier: Union[str, Loss]) -> Loss:
    """A loss from a name or a Loss object.

    Parameters
    ----------
    identifier : str or Loss
        'mse' (or 'mean_squared_error'), 'binary_crossentropy',
        'categorical_crossentropy', 'sparse_categorical_crossentropy', or a
        Loss, returned as it is.

    Returns
    -------
    Loss

    Raises
    ------
    ValueError
        If the name is unknown.
    TypeError
        If identifier is neither a name nor a Loss.

    Examples
    --------
    >>> import nncore
    >>> nncore.losses.get("binary_crossentropy")
    BinaryCrossentropy(from_logits=False)
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier]()
        except KeyError:
            raise ValueError(unknown_name("loss", identifier, _BY_NAME)) from None
    raise TypeError(f"expected a loss name or a Loss, got {identifier!r}")
