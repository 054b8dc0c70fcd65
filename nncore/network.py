"""The Network: a stack of layers trained with a loss and an optimizer."""
from __future__ import annotations

import math
import threading
from typing import Any, Iterable, List, Optional, Sequence, Union

import numpy as np

from . import _streaming, _training, _weights
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import saving
from .callbacks import History
from ._data import as_float_array, check_positive_int, check_shape
from ._threads import begin_native_run, end_native_run, get_num_threads
from ._native.data import new_shuffle_state, shuffle as shuffle_order
from ._native.optim import apply_update
from ._native.plan import Plan
from .layers.base import Layer

PREDICT_CHUNK = 256
# batch_size * parameter count below which BLAS runs single-threaded
SMALL_WORK = 1 << 24


class Network:
    """A feed-forward stack of layers.

    Built lazily from the first data it sees (or from `input_shape`, the shape
    of one sample).  When every layer, the loss and the optimizer are native,
    training and prediction run whole batches in single native calls;
    otherwise the network runs its layers one by one in Python, with the same
    numbers.
    """

    #: the optimizer updater the cached training plan was set up with
    _train_plan_updater: Any

    def __init__(self, layers: Optional[Iterable[Layer]] = None,
                 input_shape: Optional[Sequence[int]] = None, dtype="float32",
                 seed: Optional[int] = None):
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"Network: dtype must be float32 or float64, got {dtype!r}") from None
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"Network: dtype must be float32 or float64, got {dtype!r}")
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.layers: List[Layer] = []
        self.input_shape = None if input_shape is None else \
            check_shape(input_shape, "Network: input_shape")
        self.loss: Optional[Union[losses_module.Loss, losses_module.FunctionLoss]] = None
        self.optimizer: Optional[optimizers_module.Optimizer] = None
        self.metrics: list = []
        self._article_loss = False
        self.history: Optional[History] = None
        self.stop_training = False
        self.built = False
        self._train_plan: Optional[Plan] = None
        self._local = threading.local()
        self._param_count: Optional[int] = None
        self._fit_thread: Optional[int] = None
        self._shuffle_state: Optional[np.ndarray] = None
        for layer in layers or []:
            self.add(layer)

    # ----------------------------------------------------------------- structure
    def add(self, layer: Layer) -> "Network":
        """Append a layer; returns the network so calls can be chained."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Network.add takes a nncore Layer, got {type(layer).__name__}")
        if self.built:
            raise RuntimeError("Network.add: the network is already built; "
                               "add every layer before the first fit or predict")
        self.layers.append(layer)
        return self

    def use(self, loss, loss_prime=None, optimizer=None, metrics=None) -> "Network":
        """Set the loss (a name, a Loss, or the article's loss and loss_prime
        functions), optionally the optimizer (a name or an Optimizer) and the
        metrics reported by fit and evaluate (names such as 'accuracy',
        'top_k_accuracy', 'mae', Metric objects or functions)."""
        self.loss = losses_module.get(loss, loss_prime)
        self._article_loss = callable(loss) and not isinstance(
            loss, (losses_module.Loss, losses_module.FunctionLoss))
        self.optimizer = None if optimizer is None else optimizers_module.get(optimizer)
        self.metrics = list(metrics or [])
        for metric in self.metrics:
            metrics_module.get(metric)  # unknown names fail here, not in fit
        self._train_plan = None
        return self

    def build(self, input_shape: Optional[Sequence[int]] = None) -> "Network":
        """Create every layer's weights for samples of `input_shape`."""
        if self.built:
            return self
        if not self.layers:
            raise RuntimeError("Network: add at least one layer before building")
        shape = input_shape if input_shape is not None else self.input_shape
        if shape is None:
            raise RuntimeError("Network: the input shape is unknown; pass input_shape= "
                               "or call fit first")
        shape = check_shape(shape, "Network: input_shape")
        self.input_shape = shape
        for index, layer in enumerate(self.layers):
            layer.dtype = self.dtype
            layer.rng = self.rng
            try:
                layer.build(shape)
            except (ValueError, TypeError) as error:
                raise type(error)(self._where(index, error)) from None
            for p in layer.params:
                if p.dtype != self.dtype or not p.flags.c_contiguous:
                    raise TypeError(self._where(index, f"parameters must be C-contiguous "
                                                       f"{self.dtype} arrays, got {p.dtype}"))
            if layer.output_shape is None:
                raise TypeError(self._where(index, "build() did not set output_shape"))
            shape = tuple(layer.output_shape)
        self.built = True
        return self

    def _where(self, index: int, message) -> str:
        name = type(self.layers[index]).__name__
        text = str(message)
        if text.startswith(name + ": "):
            text = text[len(name) + 2:]
        return f"layer {index} ({name}): {text}"

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.built else None

    @property
    def params(self) -> List[np.ndarray]:
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> List[np.ndarray]:
        return [g for layer in self.layers for g in layer.grads]

    def _native_ops(self) -> Optional[list]:
        ops = []
        for layer in self.layers:
            layer_ops = layer.native_ops()
            if layer_ops is None:
                return None
            ops.extend(layer_ops)
        return ops

    def _predict_plan(self) -> Optional[Plan]:
        """This thread's inference plan (None for a network with Python layers):
        threads predicting at once use their own buffers.  Called once built."""
        local = self._local
        if not hasattr(local, "plan"):
            ops = self._native_ops()
            local.plan = Plan(ops, self.dtype) if ops else None
        return local.plan

    # ------------------------------------------------------------------ data
    def _inputs(self, x, what="x") -> np.ndarray:
        x = as_float_array(x, self.dtype, what)
        if not self.built:
            self.build(x.shape[1:])
        input_shape = self.input_shape
        assert input_shape is not None       # set by build
        if x.shape[1:] != input_shape:
            first = type(self.layers[0]).__name__
            raise ValueError(f"layer 0 ({first}): expected input shape "
                             f"{(None,) + input_shape}, received {x.shape}")
        return x

    def _targets(self, y, n: int) -> np.ndarray:
        y = np.asarray(y) if not isinstance(y, np.ndarray) else y
        if isinstance(y, np.ndarray) and y.dtype.kind not in "biuf":
            raise TypeError(f"y must be a numeric array, got dtype {y.dtype}")
        y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(f"x has {n} samples but y has "
                             f"{y.shape[0] if y.ndim else 'no sample axis'}")
        out_shape = self.output_shape
        out_size = int(np.prod(out_shape, dtype=np.int64))
        if getattr(self.loss, "sparse", False):
            width = out_shape[-1]
            rows = out_size // width
            if y.size != n * rows:
                raise ValueError(f"{self._loss_name()}: expected one class label per sample "
                                 f"row, shape {(n,) + out_shape[:-1]}, received {y.shape}")
            labels = y.reshape(n, rows)
            if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
                raise ValueError(f"{self._loss_name()}: labels must be integers")
            if labels.min() < 0 or labels.max() >= width:
                raise ValueError(f"{self._loss_name()}: labels must be in [0, {width}), "
                                 f"found {labels.min():g}..{labels.max():g}")
            return np.ascontiguousarray(labels, dtype=self.dtype)
        if y.size != n * out_size:
            hint = ""
            if y.size == n and out_shape[-1] > 1:
                hint = (" (for integer class labels use 'sparse_categorical_crossentropy' "
                        "or nncore.utils.to_categorical)")
            raise ValueError(f"{self._loss_name()}: expected targets of shape "
                             f"{(None,) + out_shape} like the network output, received "
                             f"{y.shape}{hint}")
        y = np.ascontiguousarray(y.reshape(n, out_size), dtype=self.dtype)
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or inf")
        return y

    def _loss_name(self) -> str:
        return getattr(self.loss, "name", type(self.loss).__name__)

    # --------------------------------------------------------------- training
    def _native_loss(self):
        if not isinstance(self.loss, losses_module.Loss):
            return None
        out_shape = self.output_shape
        size = int(np.prod(out_shape, dtype=np.int64))
        return self.loss.native(self.dtype, size, out_shape[-1] if out_shape else 1)

    def _training_plan(self, optimizer) -> Optional[Plan]:
        if self._train_plan is None or self._train_plan_updater is not optimizer.updater:
            ops = self._native_ops()
            loss = self._native_loss()
            if ops is None or loss is None:
                self._train_plan = None
            else:
                plan = Plan(ops, self.dtype)
                plan.set_training(loss, optimizer.updater, self.params)
                self._train_plan = plan
            self._train_plan_updater = optimizer.updater
        return self._train_plan

    def fit(self, x, y=None, epochs: int = 1, batch_size: Optional[int] = None,
            validation_data=None, validation_split: float = 0.0, shuffle: bool = True,
            verbose: int = 1, callbacks: Optional[list] = None, initial_epoch: int = 0,
            learning_rate: Optional[float] = None, sample_weight=None,
            class_weight: Optional[dict] = None) -> History:
        """Train on x, y from epoch `initial_epoch` up to `epochs`; returns a
        History (also kept as `network.history`).

        x may also be a dask array (y a dask array of targets) or a sequence
        or iterable of (x, y) or (x, y, sample_weight) batches (y None): fit
        then streams one block or batch at a time (see nncore/_streaming.py).
        `sample_weight` (n,) weighs each sample's loss (the batch loss is
        sum_i w_i loss_i / batch size, as in Keras); `class_weight` maps class
        indices to weights that multiply it.

        Article-style calls -- the loss was given as functions
        (`use(mse, mse_prime)`), or `learning_rate` is passed and `use` set no
        optimizer -- default to batch_size=1 (per-sample SGD) and print the
        article's `epoch i/N   error=...` line per epoch when verbose.  All
        other calls default to batch_size=32 and, with verbose=1, show a
        progress bar (one line per epoch when the output is not a terminal;
        verbose=2 always one line per epoch).  Without an optimizer set in
        `use`, training is plain SGD with `learning_rate` (default 0.01).
        `validation_split` holds out the last fraction of x, y (before
        shuffling).  A NaN or inf loss raises FloatingPointError naming the
        epoch and batch, unless a TerminateOnNaN callback ends training.
        """
        self._claim_for_training()
        try:
            if _streaming.is_stream(x):
                return _streaming.fit(self, x, y, epochs, batch_size, validation_data,
                                      validation_split, shuffle, verbose, callbacks,
                                      initial_epoch, learning_rate, sample_weight,
                                      class_weight)
            return _training.fit(self, x, y, epochs, batch_size, validation_data,
                                 validation_split, shuffle, verbose, callbacks,
                                 initial_epoch, learning_rate, sample_weight, class_weight)
        finally:
            self._fit_thread = None

    def _shuffle_generator(self) -> np.ndarray:
        """The state of the generator that shuffles the samples of each epoch
        (drawn once from the network's seed, kept across fit calls and saved
        with the model, so that fit(2 epochs) twice equals fit(4 epochs))."""
        if self._shuffle_state is None:
            self._shuffle_state = new_shuffle_state(int(self.rng.integers(2**63)))
        return self._shuffle_state

    def _claim_for_training(self) -> None:
        # fit changes the weights in place: refuse a second fit, and predict
        # from other threads (see _check_not_training), while it runs
        if self._fit_thread is not None:
            raise RuntimeError("Network.fit: this network is already being trained "
                               "(in another thread)")
        self._fit_thread = threading.get_ident()

    def _check_not_training(self) -> None:
        owner = self._fit_thread
        if owner is not None and owner != threading.get_ident():
            raise RuntimeError("Network.predict: fit is running on this network in another "
                               "thread and is changing its weights; predict on a copy or "
                               "after fit returns")

    def _shaped(self, out, target):
        """Network outputs and targets (flattened per sample) in the shapes
        metrics and losses expect."""
        n = out.shape[0]
        out = out.reshape((n,) + self.output_shape)
        if getattr(self.loss, "sparse", False):
            return out, target.reshape((n,) + self.output_shape[:-1])
        return out, target.reshape((n,) + self.output_shape)

    def _fit_optimizer(self, learning_rate):
        optimizer = self.optimizer
        if optimizer is None:
            optimizer = self._default_sgd = getattr(self, "_default_sgd", None) or \
                optimizers_module.SGD()
        if learning_rate is not None:
            optimizer.learning_rate = learning_rate
        if getattr(optimizer, "_built_for", None) is not self:
            optimizer.build(self.params, self.dtype)
            optimizer._built_for = self
        self.training_optimizer = optimizer
        return optimizer

    def _resolved_metrics(self) -> list:
        sparse = getattr(self.loss, "sparse", False)
        return [metrics_module.get(m, self.loss, sparse, self.output_shape[-1])
                for m in self.metrics]

    def evaluate(self, x, y=None, batch_size: Optional[int] = None,
                 sample_weight=None) -> dict:
        """{'loss': ..., <metric>: ...} of the network on x, y (means over the
        samples; with sample_weight the loss is sum_i w_i loss_i / n, the
        metrics stay unweighted).  x may be a dask array or batches, as in fit."""
        if self.loss is None:
            raise RuntimeError("Network.evaluate: set a loss with use(...) first")
        if _streaming.is_stream(x):
            return _streaming.evaluate(self, x, y, batch_size, sample_weight)
        x = self._inputs(x)
        y = self._targets(y, x.shape[0])
        weights = _weights.combined(self, y, sample_weight, None)
        out, target = self._shaped(self.predict(x, batch_size), y)
        scores = {"loss": float(self.loss(target, out, sample_weight=weights)
                                if weights is not None else self.loss(target, out))}
        for metric in self._resolved_metrics():
            scores[metric.name] = float(metric(target, out))
        return scores

    def predict_classes(self, x, batch_size: Optional[int] = None) -> np.ndarray:
        """Class indices: argmax over the last axis, or output > 0.5 for a
        single output unit."""
        out = self.predict(x, batch_size)
        if out.shape[-1] == 1:
            return (out[..., 0] > 0.5).astype(np.int64)
        return out.argmax(-1)

    def _train_python(self, x, y, order, batch_size, first_step, rates, optimizer,
                      state, weights=None) -> np.ndarray:
        """The per-layer Python loop, for networks with Python layers or losses;
        the same steps as `Plan.train`."""
        loss = self.loss
        assert loss is not None              # fit checks that a loss is set
        n = x.shape[0]
        per_epoch = math.ceil(n / batch_size)
        losses = np.empty(len(rates))
        params, grads = self.params, self.grads
        target_shape = None if getattr(self.loss, "sparse", False) else self.output_shape
        for s, rate in enumerate(rates):
            k = (first_step + s) % per_epoch
            if k == 0 and state is not None:
                shuffle_order(order, state)
            index = order[k * batch_size:(k + 1) * batch_size]
            out = x[index]
            target = y[index]
            if target_shape is not None:
                target = target.reshape((len(index),) + target_shape)
            for layer in self.layers:
                out = layer.forward(out, training=True)
            if weights is not None:
                w = weights[index]
                losses[s] = loss(target, out, sample_weight=w)
                grad = loss.gradient(target, out, sample_weight=w)
            else:
                losses[s] = loss(target, out)
                grad = loss.gradient(target, out)
            self._last_batch = (np.reshape(out, (len(index), -1)),
                                np.reshape(target, (len(index), -1)))
            for layer in reversed(self.layers):
                grad = layer.backward(grad)
            apply_update(optimizer.updater, params, grads, float(rate))
        return losses

    # ------------------------------------------------------------- inference
    def predict(self, x, batch_size: Optional[int] = None) -> np.ndarray:
        """The network output for every sample of x, shape (n,) + output_shape.
        A dask array or a sequence/iterable of batches is predicted one block
        at a time into a NumPy array (nncore.dask.predict gives a dask array)."""
        if not self.built and self.input_shape is None:
            raise RuntimeError("Network.predict: the network is not built yet; "
                               "fit it, call build(input_shape) or pass input_shape=")
        if _streaming.is_stream(x):
            return _streaming.predict(self, x, batch_size)
        chunk = PREDICT_CHUNK if batch_size is None else check_positive_int(batch_size,
                                                                             "batch_size")
        self._check_not_training()
        x = self._inputs(x)
        n = x.shape[0]
        plan = self._predict_plan()
        if plan is not None:
            out = np.empty((n, plan.out_size), self.dtype)
            begin_native_run(self._blas_threads_for(min(chunk, n)))
            try:
                plan.predict(x.reshape(n, -1), out, chunk)
            finally:
                end_native_run()
            return out.reshape((n,) + self.output_shape)
        parts = []
        for start in range(0, n, chunk):
            out = x[start:start + chunk]
            for layer in self.layers:
                out = layer.forward(out, training=False)
            parts.append(np.asarray(out, dtype=self.dtype))
        return np.concatenate(parts)

    def _blas_threads_for(self, batch_size: int) -> int:
        """One BLAS thread for small batches, where threads cost more than
        they bring; all of them for large ones."""
        if self._param_count is None:
            self._param_count = sum(p.size for p in self.params)
        small = batch_size * self._param_count < SMALL_WORK
        return 1 if small else get_num_threads()

    # ---------------------------------------------------------------- summary
    def summary(self, print_fn=print) -> str:
        """A table of the layers, their output shapes and parameter counts."""
        rows = [("#", "Layer (type)", "Output Shape", "Param #")]
        for i, layer in enumerate(self.layers):
            shape = (None,) + tuple(layer._built_output_shape()) if layer.built else "(unbuilt)"
            rows.append((str(i), repr(layer), str(shape), f"{layer.count_params():,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
        rule = "-" * len(line(rows[0]))
        total = sum(layer.count_params() for layer in self.layers)
        text = "\n".join([f"Network ({self.dtype}, input {self.input_shape})", rule,
                          line(rows[0]), rule] + [line(r) for r in rows[1:]] +
                         [rule, f"Total params: {total:,}"])
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self) -> str:
        return f"Network({len(self.layers)} layers, dtype={self.dtype})"

    # ===================================================== saving (issue 5)
    # Thin wrappers over nncore/saving.py; keep this block at the end of the class.
    def save(self, path, include_optimizer: bool = True) -> None:
        """Write the network to `path` (atomically); `nncore.load(path)` reads it."""
        saving.save(self, path, include_optimizer)

    def get_config(self) -> dict:
        """The structure as JSON data: dtype, input shape, seed, layers, loss, optimizer."""
        return saving.network_config(self)

    @classmethod
    def from_config(cls, config: dict) -> "Network":
        """A new network (fresh weights) from `get_config()` output."""
        return saving.network_from_config(config, cls)

    def get_weights(self) -> List[np.ndarray]:
        """Copies of every layer's parameters and state arrays, in layer order."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Copy `get_weights()`-style arrays into the network, checking the
        count, shapes and dtypes first (nothing is changed on a mismatch)."""
        if not self.built:
            raise RuntimeError("Network.set_weights: the network is not built yet; "
                               "call build(input_shape) first")
        weights, start, checked = list(weights), 0, []
        expected = sum(len(layer.params) + len(layer.state) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"Network.set_weights: expected {expected} arrays, "
                             f"received {len(weights)}")
        for index, layer in enumerate(self.layers):
            count = len(layer.params) + len(layer.state)
            try:
                checked.append(layer.check_weights(weights[start:start + count]))
            except (ValueError, TypeError) as error:
                raise type(error)(self._where(index, error)) from None
            start += count
        for layer, arrays in zip(self.layers, checked):
            layer.set_weights(arrays)

    def copy(self) -> "Network":
        """An independent copy (weights, optimizer state and random state)."""
        return saving.loads(saving.dumps(self))

    def __reduce__(self):
        # pickle, copy.deepcopy and multiprocessing go through the model format
        return (saving.loads, (saving.dumps(self),))
