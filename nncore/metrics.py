"""Metrics reported by `fit` and `evaluate`, computed with NumPy on the
network's predictions.

`'accuracy'` (or `'acc'`) picks binary, categorical or sparse accuracy from
the loss and the label shape, as Keras does.  A metric is any object with a
`name` and `__call__(y_true, y_pred) -> float` (a mean over the samples), or
a plain function of (y_true, y_pred).

Metrics given by name or as registered `Metric` classes are saved with the
network (`get_config()` gives the constructor arguments as JSON values);
metrics given as Python functions cannot be saved.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Union

import numpy as np

from .errors import unknown_name
from .registry import auto_register, lookup, registered_name


class Metric:
    """The base class of metrics: a `name` and ``__call__(y_true, y_pred)``
    returning the mean over the samples as a float.

    Subclasses are registered by class name, so a network that uses them can
    be saved and loaded; one whose constructor takes arguments also defines
    `get_config`.

    Examples
    --------
    >>> import numpy as np
    >>> from nncore.metrics import Metric
    >>> class MaxError(Metric):
    ...     name = "max_error"
    ...     def __call__(self, y_true, y_pred):
    ...         return float(np.max(np.abs(np.asarray(y_true) - y_pred)))
    >>> MaxError()(np.array([1.0, 2.0]), np.array([1.5, 2.0]))
    0.5
    """
    name = "metric"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        auto_register("metric", cls)

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor arguments as JSON values (for saving).  Metrics
        whose constructor takes arguments must override this."""
        extra = [p for p in inspect.signature(type(self).__init__).parameters
                 if p not in ("self", "args", "kwargs")]
        if extra:
            raise NotImplementedError(f"{type(self).__name__} takes {extra} and must "
                                      f"implement get_config() to be saved")
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BinaryAccuracy(Metric):
    """Share of outputs on the right side of `threshold` (0.5 for
    probabilities; use 0 for logits).

    Parameters
    ----------
    threshold : float, default 0.5
        Outputs above it count as class 1.

    Examples
    --------
    >>> import numpy as np
    >>> from nncore.metrics import BinaryAccuracy
    >>> print(BinaryAccuracy()(np.array([[1.0], [0.0]]), np.array([[0.9], [0.7]])))
    0.5
    """
    name = "accuracy"

    def __init__(self, threshold: float = 0.5):
        self.threshold = float(threshold)

    def get_config(self) -> dict:
        return {"threshold": self.threshold}

    def __call__(self, y_true, y_pred):
        y_pred = np.asarray(y_pred).reshape(len(y_pred), -1)
        y_true = np.asarray(y_true).reshape(y_pred.shape)
        return float(np.mean((y_pred > self.threshold) == (y_true > 0.5)))


class CategoricalAccuracy(Metric):
    """Share of rows whose largest output is the one-hot target's class.

    Examples
    --------
    >>> import numpy as np
    >>> from nncore.metrics import CategoricalAccuracy
    >>> print(CategoricalAccuracy()(np.array([[0, 1], [1, 0]]),
    ...                             np.array([[0.2, 0.8], [0.3, 0.7]])))
    0.5
    """
    name = "accuracy"

    def __call__(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        y_true = np.asarray(y_true).reshape(y_pred.shape)
        hits = np.count_nonzero(y_pred.argmax(-1) == y_true.argmax(-1))
        return hits / max(y_pred[..., 0].size, 1)


class SparseCategoricalAccuracy(Metric):
    """Share of rows whose largest output is the integer label.

    Examples
    --------
    >>> import numpy as np
    >>> from nncore.metrics import SparseCategoricalAccuracy
    >>> print(SparseCategoricalAccuracy()(np.array([1, 0]),
    ...                                   np.array([[0.2, 0.8], [0.3, 0.7]])))
    0.5
    """
    name = "accuracy"

    def __call__(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        labels = np.asarray(y_true).reshape(y_pred.shape[:-1])
        return np.count_nonzero(y_pred.argmax(-1) == labels) / max(labels.size, 1)


class TopKAccuracy(Metric):
    """Share of rows whose target class is among the k largest outputs
    (targets one-hot rows, or integer labels when `sparse`).

    Parameters
    ----------
    k : int, default 5
        How many of the largest outputs count.
    sparse : bool, default False
        Whether the targets are integer labels.

    Examples
    --------
    >>> import numpy as np
    >>> from nncore.metrics import TopKAccuracy
    >>> top2 = TopKAccuracy(2, sparse=True)
    >>> top2.name
    'top_2_accuracy'
    >>> print(top2(np.array([2, 0]), np.array([[0.1, 0.5, 0.4], [0.1, 0.5, 0.4]])))
    0.5
    """

    def __init__(self, k: int = 5, sparse: bool = False):
        if int(k) < 1:
            raise ValueError(f"TopKAccuracy: k must be >= 1, got {k!r}")
        self.k = int(k)
        self.sparse = bool(sparse)
        self.name = f"top_{self.k}_accuracy"

    def get_config(self) -> dict:
        return {"k": self.k, "sparse": self.sparse}

    def __call__(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        width = y_pred.shape[-1]
        scores = y_pred.reshape(-1, width)
        if self.sparse:
            labels = np.asarray(y_true).reshape(-1).astype(np.int64)
        else:
            labels = np.asarray(y_true).reshape(-1, width).argmax(-1)
        target = scores[np.arange(len(scores)), labels]
        # rank = number of classes scoring strictly higher than the target
        rank = (scores > target[:, None]).sum(-1)
        return float(np.mean(rank < self.k))


class MeanAbsoluteError(Metric):
    """The mean absolute difference between targets and predictions
    (``'mae'``), computed in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from nncore.metrics import MeanAbsoluteError
    >>> MeanAbsoluteError()(np.array([[1.0], [2.0]]), np.array([[1.5], [1.0]]))
    0.75
    """
    name = "mae"

    def __call__(self, y_true, y_pred):
        y_pred = np.asarray(y_pred, dtype=np.float64)
        y_true = np.asarray(y_true, dtype=np.float64).reshape(y_pred.shape)
        return float(np.mean(np.abs(y_pred - y_true)))


class FunctionMetric(Metric):
    """A metric from a plain function of ``(y_true, y_pred)``, named after
    the function.  It works in `fit` and `evaluate` but cannot be saved.

    Parameters
    ----------
    function : callable
        ``function(y_true, y_pred)`` returning a number.

    Examples
    --------
    >>> import numpy as np
    >>> from nncore.metrics import FunctionMetric
    >>> def worst(y_true, y_pred):
    ...     return np.max(np.abs(y_true - y_pred))
    >>> metric = FunctionMetric(worst)
    >>> metric.name, metric(np.array([0.0, 1.0]), np.array([0.5, 1.0]))
    ('worst', 0.5)
    """

    def __init__(self, function: Callable):
        self.function = function
        self.name = getattr(function, "__name__", "metric")

    def __call__(self, y_true, y_pred):
        return float(self.function(y_true, y_pred))

    def get_config(self) -> dict:
        raise ValueError(f"the metric {self.name!r} is a Python function and cannot be "
                         f"saved; pass a metric name or a registered nncore.metrics.Metric")


# by name (Keras' names of the accuracy variants, which unlike 'accuracy' do
# not adapt to the loss and the labels)
_BY_NAME = {"mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
            "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
            "sparse_categorical_accuracy": SparseCategoricalAccuracy}
NAMES = ("accuracy", "acc", "top_k_accuracy", "top_k_categorical_accuracy",
         "sparse_top_k_categorical_accuracy") + tuple(_BY_NAME)


def get(identifier: Union[str, Metric, Callable], loss=None, sparse_labels: bool = False,
        output_width: int = 1) -> Metric:
    """A metric from a name or object.  For 'accuracy', `loss` and the label
    layout decide the variant: sparse labels -> sparse categorical; one output
    or a binary cross-entropy loss -> binary (threshold 0 for logits);
    otherwise categorical.

    Parameters
    ----------
    identifier : str, Metric or callable
        A name ('accuracy', 'mae', ...) or a metric, returned as it is.
    loss : Loss or str, optional
        The network's loss (decides the accuracy variant).
    sparse_labels : bool, default False
        Whether the targets are integer labels.
    output_width : int, default 1
        The number of outputs per sample.

    Returns
    -------
    Metric

    Raises
    ------
    ValueError
        If the name is unknown.

    Examples
    --------
    >>> from nncore import metrics
    >>> metrics.get("accuracy", sparse_labels=True, output_width=10)
    SparseCategoricalAccuracy()
    >>> metrics.get("accuracy", output_width=1)
    BinaryAccuracy()
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        name = identifier.lower()
        if name in ("accuracy", "acc"):
            if sparse_labels:
                return SparseCategoricalAccuracy()
            loss_name = type(loss).__name__ if loss is not None else ""
            if output_width == 1 or loss_name == "BinaryCrossentropy":
                logits = getattr(loss, "from_logits", False)
                return BinaryAccuracy(0.0 if logits else 0.5)
            return CategoricalAccuracy()
        if name in ("top_k_accuracy", "top_k_categorical_accuracy",
                    "sparse_top_k_categorical_accuracy"):
            return TopKAccuracy(5, sparse_labels)
        if name in _BY_NAME:
            return _BY_NAME[name]()
        raise ValueError(unknown_name("metric", identifier, NAMES,
                                      " or pass a Metric or a function"))
    if callable(identifier):
        return FunctionMetric(identifier)
    raise TypeError(f"expected a metric name, a Metric or a function, got {identifier!r}")


# ------------------------------------------------------------------- saving
def serialize(metrics: list) -> list:
    """The metrics given to `Network.use` as JSON values: names stay names,
    Metric objects become {"class": registered name, "config": ...}.

    Parameters
    ----------
    metrics : list
        Names and Metric objects.

    Returns
    -------
    list
        JSON values that `deserialize` reads back.

    Examples
    --------
    >>> from nncore import metrics
    >>> metrics.serialize(["accuracy", metrics.TopKAccuracy(3)])
    ['accuracy', {'class': 'TopKAccuracy', 'config': {'k': 3, 'sparse': False}}]
    """
    entries: list = []
    for metric in metrics:
        if isinstance(metric, str):
            entries.append(metric)
        elif isinstance(metric, Metric):
            entries.append({"class": registered_name("metric", metric),
                            "config": metric.get_config()})
        else:
            name = getattr(metric, "__name__", repr(metric))
            raise ValueError(f"the metric {name!r} is a Python function and cannot be "
                             f"saved; pass a metric name or a registered "
                             f"nncore.metrics.Metric")
    return entries


def deserialize(entries) -> list:
    """The metrics of `serialize` output.

    Parameters
    ----------
    entries : list
        What `serialize` returned (for example read from a saved model).

    Returns
    -------
    list
        Names and Metric objects.

    Raises
    ------
    ValueError
        If an entry is not a name or a registered metric with a valid config.

    Examples
    --------
    >>> from nncore import metrics
    >>> names, top3 = metrics.deserialize(["mae", {"class": "TopKAccuracy",
    ...                                            "config": {"k": 3, "sparse": False}}])
    >>> names, top3.k
    ('mae', 3)
    """
    if not isinstance(entries, list):
        raise ValueError("'metrics' must be a list")
    metrics: list = []
    for entry in entries:
        if isinstance(entry, str):
            get(entry)                   # unknown names fail here
            metrics.append(entry)
        elif isinstance(entry, dict) and set(entry) == {"class", "config"} and \
                isinstance(entry["config"], dict):
            cls: Any = lookup("metric", entry["class"])
            metrics.append(cls.from_config(entry["config"]))
        else:
            raise ValueError(f"invalid metric entry {entry!r}")
    return metrics
