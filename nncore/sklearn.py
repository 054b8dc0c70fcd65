"""scikit-learn estimators over nncore networks: `NNClassifier` and `NNRegressor`.

Needs scikit-learn (`pip install "nncore[sklearn]"`); `import nncore` does not
import this module.  The estimators follow scikit-learn's conventions
(parameters stored untouched by `__init__`, validation in `fit`, fitted
attributes ending in `_`) and the names of `MLPClassifier`/`MLPRegressor`.
"""
from __future__ import annotations

import copy
import numbers
import warnings
from typing import Optional

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:                                   # pragma: no cover
    raise ImportError("nncore.sklearn needs scikit-learn: pip install 'nncore[sklearn]' "
                      "(or pip install scikit-learn)") from error

from . import losses, optimizers, regularizers
from ._data import check_shape
from ._weights import check_sample_weight
from .callbacks import Callback
from .layers import Conv2D, Dense
from .network import Network

__all__ = ["NNClassifier", "NNRegressor"]

ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
# MLPClassifier's activation names -> nncore's
_ACTIVATION_NAMES = {"identity": None, "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


class _Convergence(Callback):
    """Records loss_curve_ and n_iter_ each epoch and stops training as
    MLPClassifier does: when the training loss (or, with early stopping, the
    validation score) has not improved by `tol` for more than
    `n_iter_no_change` epochs in a row.  With early stopping it keeps the
    weights of the best validation score."""

    def __init__(self, estimator, validation):
        self.estimator = estimator
        self.validation = validation

    def on_epoch_end(self, epoch, logs=None):
        est = self.estimator
        loss = float((logs or {})["loss"])
        est.loss_curve_.append(loss)
        est.n_iter_ += 1
        if self.validation is not None:
            score = est._network_score(*self.validation)
            est.validation_scores_.append(score)
            if score > est.best_validation_score_:
                est._best_weights = est.network_.get_weights()
            improved = score > est.best_validation_score_ + est.tol
            est.best_validation_score_ = max(est.best_validation_score_, score)
        else:
            improved = loss < est.best_loss_ - est.tol
            est.best_loss_ = min(est.best_loss_, loss)
        est._no_improvement_count = 0 if improved else est._no_improvement_count + 1
        if est._no_improvement_count > est.n_iter_no_change:
            est._converged = True
            self.network.stop_training = True


def _penalize_kernels(layers, l2: float) -> None:
    """MLPClassifier's `alpha`: an L2 penalty l2 * sum(W**2) on the kernel of
    every Dense and Conv2D layer that has no kernel regularizer of its own."""
    if l2 == 0:
        return
    for layer in layers:
        if isinstance(layer, (Dense, Conv2D)) and layer.kernel_regularizer is None \
                and not layer.built:
            layer.kernel_regularizer = regularizers.L2(l2)
        _penalize_kernels(getattr(layer, "layers", ()), l2)       # inside Residual blocks


class _NNBase(BaseEstimator):
    """Shared parameters and training loop of the two estimators."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", layers=None,
                 optimizer="adam", learning_rate=1e-3, batch_size=32, max_iter=200,
                 shuffle=True, tol=1e-4, n_iter_no_change=10, early_stopping=False,
                 validation_fraction=0.1, warm_start=False, random_state=None,
                 dtype="float32", verbose=0, input_shape=None, alpha=1e-4):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.layers = layers
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.random_state = random_state
        self.dtype = dtype
        self.verbose = verbose
        self.input_shape = input_shape
        self.alpha = alpha

    # ------------------------------------------------------------ checking
    def _check_params(self) -> None:
        def positive_int(name):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                    or int(value) < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive integer, "
                                 f"got {value!r}")
        for name in ("batch_size", "max_iter", "n_iter_no_change"):
            positive_int(name)
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else sizes
        try:
            sizes = tuple(sizes)
        except TypeError:
            sizes = (None,)
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and int(s) > 0
                   for s in sizes):
            raise ValueError(f"{type(self).__name__}: hidden_layer_sizes must be a tuple of "
                             f"positive integers, got {self.hidden_layer_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"{type(self).__name__}: activation must be one of "
                             f"{ACTIVATIONS}, got {self.activation!r}")
        if self.layers is not None and not callable(self.layers):
            raise TypeError(f"{type(self).__name__}: layers must be a callable "
                            f"(n_features, n_outputs) -> list of layers, got {self.layers!r}")
        if not (isinstance(self.learning_rate, numbers.Real)
                and float(self.learning_rate) > 0):
            raise ValueError(f"{type(self).__name__}: learning_rate must be a positive "
                             f"number, got {self.learning_rate!r}")
        if not (isinstance(self.tol, numbers.Real) and float(self.tol) >= 0):
            raise ValueError(f"{type(self).__name__}: tol must be a non-negative number, "
                             f"got {self.tol!r}")
        if not (isinstance(self.validation_fraction, numbers.Real)
                and 0 < float(self.validation_fraction) < 1):
            raise ValueError(f"{type(self).__name__}: validation_fraction must be in (0, 1), "
                             f"got {self.validation_fraction!r}")
        if not (isinstance(self.alpha, numbers.Real) and float(self.alpha) >= 0
                and np.isfinite(float(self.alpha))):
            raise ValueError(f"{type(self).__name__}: alpha must be a finite number >= 0, "
                             f"got {self.alpha!r}")
        if np.dtype(self.dtype) not in (np.float32, np.float64):
            raise ValueError(f"{type(self).__name__}: dtype must be 'float32' or 'float64', "
                             f"got {self.dtype!r}")

    def _validate(self, X, y="no_validation", reset=True):
        """X as a C-contiguous array of the network dtype (and y, if given)."""
        dtype = np.dtype(self.dtype)
        if isinstance(y, str) and y == "no_validation":
            X = validate_data(self, X, reset=reset, dtype=dtype, order="C")
        else:
            X, y = validate_data(self, X, y, reset=reset, dtype=dtype, order="C",
                                 multi_output=True, y_numeric=self._y_numeric)
        if self.input_shape is not None:
            shape = check_shape(self.input_shape, f"{type(self).__name__}: input_shape")
            if int(np.prod(shape)) != X.shape[1]:
                raise ValueError(f"{type(self).__name__}: input_shape={shape} holds "
                                 f"{int(np.prod(shape))} values, but X has {X.shape[1]} "
                                 f"features")
            X = X.reshape((X.shape[0],) + shape)
        return X if isinstance(y, str) and y == "no_validation" else (X, y)

    # ------------------------------------------------------------ networks
    def _seed(self) -> Optional[int]:
        state = self.random_state
        if state is None:
            return None
        if isinstance(state, numbers.Integral) and not isinstance(state, bool):
            if not 0 <= state < 2**32:
                raise ValueError(f"{type(self).__name__}: random_state must be None, an "
                                 f"integer in [0, 2**32) or a numpy RandomState, got {state!r}")
            return int(state)
        if isinstance(state, np.random.RandomState):
            return int(state.randint(np.iinfo(np.int32).max))
        raise ValueError(f"{type(self).__name__}: random_state must be None, an integer or "
                         f"a numpy RandomState, got {state!r}")

    def _new_network(self, n_features: int, n_outputs: int, sample_shape,
                     batch_size: int) -> Network:
        if self.layers is not None:
            layers = self.layers(n_features, n_outputs)
            if not isinstance(layers, (list, tuple)) or not layers:
                raise TypeError(f"{type(self).__name__}: layers(n_features, n_outputs) must "
                                f"return a non-empty list of nncore layers, it returned "
                                f"{layers!r}")
            layers = list(layers)
        else:
            sizes = self.hidden_layer_sizes
            sizes = (sizes,) if isinstance(sizes, numbers.Integral) else tuple(sizes)
            activation = _ACTIVATION_NAMES[self.activation]
            layers = [Dense(int(units), activation=activation) for units in sizes]
            layers.append(Dense(n_outputs))
        _penalize_kernels(layers, float(self.alpha) / (2 * batch_size))
        net = Network(layers, input_shape=sample_shape, dtype=self.dtype, seed=self._seed())
        if isinstance(self.optimizer, str):
            optimizer = optimizers.get(self.optimizer)
            optimizer.learning_rate = float(self.learning_rate)
        elif isinstance(self.optimizer, optimizers.Optimizer):
            optimizer = copy.deepcopy(self.optimizer)
        else:
            raise TypeError(f"{type(self).__name__}: optimizer must be a name or a "
                            f"nncore.optimizers.Optimizer, got {self.optimizer!r}")
        net.use(self._loss(), optimizer=optimizer)
        net.build()
        if net.output_shape != (n_outputs,):
            raise ValueError(f"{type(self).__name__}: the network from layers gives outputs "
                             f"of shape {net.output_shape}, expected ({n_outputs},)")
        return net

    def _fit(self, X, y, sample_weight, epochs: int, incremental: bool):
        """Train network_ (new unless warm_start or incremental) on X and the
        encoded targets y for up to `epochs` epochs."""
        if not (incremental or self.warm_start) or not hasattr(self, "network_"):
            self.network_ = self._new_network(self.n_features_in_, self._n_outputs,
                                              X.shape[1:], min(self.batch_size, len(X)))
            self.n_iter_ = 0
            self.loss_curve_: list = []
            self.best_loss_ = np.inf
            self._no_improvement_count = 0
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, len(X), np.float64,
                                                nonzero=True)
        validation = None
        if self.early_stopping and not incremental:
            X, X_val, y, y_val, sample_weight = self._split(X, y, sample_weight)
            validation = (X_val, y_val)
            self.validation_scores_: Optional[list] = []
            self.best_validation_score_: Optional[float] = -np.inf
            self._best_weights = None
            self._no_improvement_count = 0
        elif self.early_stopping:
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self._converged = False
        callback = _Convergence(self, validation)
        self.network_.fit(X, y, epochs=epochs, batch_size=min(self.batch_size, len(X)),
                          shuffle=bool(self.shuffle), verbose=2 if self.verbose else 0,
                          callbacks=[callback], sample_weight=sample_weight)
        if validation is not None and self._best_weights is not None:
            self.network_.set_weights(self._best_weights)
        self._best_weights = None
        if not incremental and not self._converged and epochs == self.max_iter:
            warnings.warn(f"{type(self).__name__}: stopped after max_iter={self.max_iter} "
                          f"epochs without converging (tol={self.tol})", ConvergenceWarning)
        return self

    def _split(self, X, y, sample_weight):
        stratify = y if self._stratify else None
        arrays = [X, y] + ([sample_weight] if sample_weight is not None else [])
        try:
            parts = train_test_split(*arrays, test_size=self.validation_fraction,
                                     random_state=self._seed(), stratify=stratify)
        except ValueError:
            parts = train_test_split(*arrays, test_size=self.validation_fraction,
                                     random_state=self._seed())
        X_train, X_val, y_train, y_val = parts[:4]
        return X_train, X_val, y_train, y_val, (parts[4] if sample_weight is not None
                                                else None)

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = self._validate(X, reset=False)
        return self.network_.predict(X).astype(np.float64)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_best_weights", None)
        return state


class NNClassifier(ClassifierMixin, _NNBase):
    """A neural-network classifier: dense hidden layers (or any nncore
    layers from `layers`) and a softmax output trained with cross-entropy.

    Multi-class targets use one output unit per class
    (SparseCategoricalCrossentropy from logits), binary targets one unit
    (BinaryCrossentropy from logits), multi-label indicator matrices one unit
    per label.  Parameters as in `MLPClassifier`, plus `layers` (a callable
    `(n_features, n_outputs) -> list of nncore layers`), `optimizer` (a name
    or an nncore optimizer), `dtype` of the network and `input_shape` (the
    shape each row of X is reshaped to, e.g. (28, 28, 1) for a CNN).
    `alpha` is MLPClassifier's L2 penalty, alpha / (2 * batch_size) *
    sum(W**2) over the kernels of the Dense and Conv2D layers (not the
    biases), added to the loss in `loss_curve_` as scikit-learn does.

    Attributes: `network_`, `classes_`, `n_features_in_`, `n_outputs_`,
    `n_iter_`, `loss_curve_`, `best_loss_`, and with early stopping
    `validation_scores_` and `best_validation_score_`.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        The widths of the hidden Dense layers.
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
        The hidden layers' activation.
    layers : callable, optional
        ``layers(n_features, n_outputs) -> list of nncore layers``, used
        instead of the hidden Dense layers and the output layer.
    optimizer : str or Optimizer, default "adam"
        A name or an nncore optimizer.
    learning_rate : float, default 1e-3
        The optimizer's learning rate.
    batch_size : int, default 32
        Samples per training step.
    max_iter : int, default 200
        The most epochs (passes over the data).
    shuffle : bool, default True
        Shuffle the samples every epoch.
    tol : float, default 1e-4
        The least improvement of the loss (or validation score) that counts.
    n_iter_no_change : int, default 10
        Epochs without such improvement before training stops.
    early_stopping : bool, default False
        Hold out `validation_fraction` of the data and stop on its score.
    validation_fraction : float, default 0.1
        The held-out share with early_stopping.
    warm_start : bool, default False
        Continue from the previous fit's network.
    random_state : int, optional
        Seeds the weights, shuffling and the validation split.
    dtype : {"float32", "float64"}, default "float32"
        The network's dtype.
    verbose : int, default 0
        1: print each epoch.
    input_shape : tuple of int, optional
        The shape each row of X is reshaped to (e.g. (28, 28, 1) for a CNN).
    alpha : float, default 1e-4
        The L2 penalty, as MLPClassifier's (see above).

    Examples
    --------
    >>> import numpy as np
    >>> from nncore.sklearn import NNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> clf = NNClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(X, y)
    >>> clf.classes_, clf.score(X, y) > 0.9
    (array([0, 1]), True)
    """

    _y_numeric = False
    _stratify = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _loss(self):
        if self._kind == "multiclass":
            return losses.SparseCategoricalCrossentropy(from_logits=True)
        return losses.BinaryCrossentropy(from_logits=True)

    def _classes(self, classes) -> np.ndarray:
        """partial_fit's classes=, in any order, sorted as classes_ is."""
        given = np.asarray(classes)
        if given.ndim != 1:
            raise ValueError(f"{type(self).__name__}.partial_fit: classes must be a 1-D list "
                             f"of labels, got {classes!r}")
        unique, counts = np.unique(given, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{type(self).__name__}.partial_fit: classes={given.tolist()} "
                             f"lists {unique[counts > 1].tolist()} more than once")
        return unique

    def _encode(self, y, classes=None, reset=True) -> np.ndarray:
        """Targets for the network: class indices (multi-class), 0/1 columns
        (binary, multi-label).  Sets classes_ and the target kind on reset."""
        if reset:
            kind = type_of_target(y, input_name="y")
            if kind == "multilabel-indicator":
                self._kind = "multilabel"
                self.classes_ = np.arange(y.shape[1])
                self.n_outputs_ = y.shape[1]
            else:
                check_classification_targets(y)
                if y.ndim == 2:
                    if y.shape[1] != 1:
                        raise ValueError(f"{type(self).__name__}: y of shape {y.shape} is "
                                         f"neither class labels nor a multi-label indicator "
                                         f"matrix")
                    warnings.warn("A column-vector y was passed when a 1d array was "
                                  "expected; it is used as y.ravel()",
                                  _data_conversion_warning())
                    y = y.ravel()
                self.classes_ = np.unique(y) if classes is None else self._classes(classes)
                if classes is not None and len(np.setdiff1d(np.unique(y), self.classes_)):
                    raise ValueError(f"{type(self).__name__}: y holds classes not in "
                                     f"classes={self.classes_.tolist()}")
                if len(self.classes_) < 2:
                    raise ValueError(f"{type(self).__name__} needs at least 2 classes; y "
                                     f"holds one class, {self.classes_.tolist()[0]!r}")
                self._kind = "binary" if len(self.classes_) == 2 else "multiclass"
                self.n_outputs_ = 1
            self._n_outputs = (len(self.classes_) if self._kind == "multiclass"
                               else len(self.classes_) if self._kind == "multilabel" else 1)
        if self._kind == "multilabel":
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError(f"{type(self).__name__}: expected a multi-label indicator "
                                 f"matrix with {len(self.classes_)} columns, got shape "
                                 f"{y.shape}")
            return np.asarray(y, np.float64)
        y = np.ravel(y)
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        if (self.classes_[index] != y).any():
            unknown = np.unique(y[self.classes_[index] != y])
            raise ValueError(f"{type(self).__name__}: y holds classes {unknown.tolist()} not "
                             f"seen in the first fit; expected {self.classes_.tolist()}")
        return index.reshape(-1, 1) if self._kind == "binary" else index

    def fit(self, X, y, sample_weight=None):
        """Train on X (n_samples, n_features) and class labels y (or a
        multi-label indicator matrix) for up to max_iter epochs."""
        self._check_params()
        X, y = self._validate(X, y, reset=not (self.warm_start and hasattr(self, "network_")))
        if self.warm_start and hasattr(self, "network_"):
            target = self._encode(y, reset=False)
        else:
            target = self._encode(y)
        return self._fit(X, target, sample_weight, self.max_iter, incremental=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over X, y; the first call needs `classes` (all labels)
        unless y is a multi-label indicator matrix."""
        first = not hasattr(self, "network_")
        if first:
            self._check_params()
        X, y = self._validate(X, y, reset=first)
        if first:
            if classes is None and type_of_target(y) != "multilabel-indicator":
                raise ValueError(f"{type(self).__name__}.partial_fit: pass classes= (every "
                                 f"class label) on the first call")
            target = self._encode(y, classes=classes)
        else:
            if classes is not None and not np.array_equal(np.sort(classes), self.classes_):
                raise ValueError(f"{type(self).__name__}.partial_fit: classes={classes!r} "
                                 f"differs from the first call's {self.classes_.tolist()}")
            target = self._encode(y, reset=False)
        return self._fit(X, target, sample_weight, 1, incremental=True)

    def _network_score(self, X, y) -> float:
        """Accuracy of the network on encoded targets y (for early stopping)."""
        out = self.network_.predict(X)
        if self._kind == "multiclass":
            return float(np.mean(out.argmax(1) == y))
        return float(np.mean(np.all((out > 0) == (y > 0.5), axis=1)))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), float64; for
        multi-label targets, each label's probability (n_samples, n_labels)."""
        z = self._outputs(X)
        if self._kind == "multiclass":
            z = z - z.max(1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(1, keepdims=True)
        p = _sigmoid(z)
        return np.hstack([1 - p, p]) if self._kind == "binary" else p

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithms of predict_proba, computed stably from the logits."""
        z = self._outputs(X)
        if self._kind == "multiclass":
            z = z - z.max(1, keepdims=True)
            return z - np.log(np.exp(z).sum(1, keepdims=True))
        log_p = -np.logaddexp(0, -z)            # log sigmoid(z)
        log_q = -np.logaddexp(0, z)             # log (1 - sigmoid(z))
        return np.hstack([log_q, log_p]) if self._kind == "binary" else log_p

    def predict(self, X) -> np.ndarray:
        """Class labels (a 0/1 indicator matrix for multi-label targets)."""
        z = self._outputs(X)
        if self._kind == "multilabel":
            return (z > 0).astype(np.int64)
        if self._kind == "binary":
            return self.classes_[(z[:, 0] > 0).astype(np.int64)]
        return self.classes_[z.argmax(1)]


class NNRegressor(RegressorMixin, _NNBase):
    """A neural-network regressor: dense hidden layers (or any nncore layers
    from `layers`) and a linear output trained with mean squared error.
    One output for 1-D y, one per column for 2-D y (multi-output).
    Attributes as `NNClassifier`'s (no ``classes_``).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        The widths of the hidden Dense layers.
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
        The hidden layers' activation.
    layers : callable, optional
        ``layers(n_features, n_outputs) -> list of nncore layers``, used
        instead of the hidden Dense layers and the output layer.
    optimizer : str or Optimizer, default "adam"
        A name or an nncore optimizer.
    learning_rate : float, default 1e-3
        The optimizer's learning rate.
    batch_size : int, default 32
        Samples per training step.
    max_iter : int, default 200
        The most epochs (passes over the data).
    shuffle : bool, default True
        Shuffle the samples every epoch.
    tol : float, default 1e-4
        The least improvement of the loss (or validation score) that counts.
    n_iter_no_change : int, default 10
        Epochs without such improvement before training stops.
    early_stopping : bool, default False
        Hold out `validation_fraction` of the data and stop on its score.
    validation_fraction : float, default 0.1
        The held-out share with early_stopping.
    warm_start : bool, default False
        Continue from the previous fit's network.
    random_state : int, optional
        Seeds the weights, shuffling and the validation split.
    dtype : {"float32", "float64"}, default "float32"
        The network's dtype.
    verbose : int, default 0
        1: print each epoch.
    input_shape : tuple of int, optional
        The shape each row of X is reshaped to (e.g. (28, 28, 1) for a CNN).
    alpha : float, default 1e-4
        The L2 penalty, as MLPRegressor's (see NNClassifier).

    Examples
    --------
    >>> import numpy as np
    >>> from nncore.sklearn import NNRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))
    >>> y = X @ np.array([1.5, -2.0]) + 0.5
    >>> reg = NNRegressor(hidden_layer_sizes=(16,), learning_rate=1e-2, max_iter=100,
    ...                   random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.99
    True
    """

    _y_numeric = True
    _stratify = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _loss(self):
        return losses.MSE()

    def _targets(self, y, reset: bool) -> np.ndarray:
        y = np.asarray(y, np.float64)
        if reset:
            self._y_1d = y.ndim == 1
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
            self._n_outputs = self.n_outputs_
        elif (1 if y.ndim == 1 else y.shape[1]) != self.n_outputs_:
            raise ValueError(f"{type(self).__name__}: y has {1 if y.ndim == 1 else y.shape[1]} "
                             f"outputs, the network was fitted with {self.n_outputs_}")
        return y.reshape(len(y), -1)

    def fit(self, X, y, sample_weight=None):
        """Train on X (n_samples, n_features) and y (n_samples,) or
        (n_samples, n_outputs) for up to max_iter epochs."""
        self._check_params()
        warm = self.warm_start and hasattr(self, "network_")
        X, y = self._validate(X, y, reset=not warm)
        return self._fit(X, self._targets(y, reset=not warm), sample_weight, self.max_iter,
                         incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X, y (the first call creates the network)."""
        first = not hasattr(self, "network_")
        if first:
            self._check_params()
        X, y = self._validate(X, y, reset=first)
        return self._fit(X, self._targets(y, reset=first), sample_weight, 1, incremental=True)

    def _network_score(self, X, y) -> float:
        """R^2 of the network on the validation targets (for early stopping)."""
        out = self.network_.predict(X).astype(np.float64).reshape(y.shape)
        residual = ((y - out) ** 2).sum(0)
        total = ((y - y.mean(0)) ** 2).sum(0)
        return float(np.mean(1 - residual / np.where(total == 0, 1, total)))

    def predict(self, X) -> np.ndarray:
        """Predictions (n_samples,) or (n_samples, n_outputs), float64."""
        out = self._outputs(X)
        return out[:, 0] if self._y_1d else out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -z))


def _data_conversion_warning():
    from sklearn.exceptions import DataConversionWarning
    return DataConversionWarning
