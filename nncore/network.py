"""The Network: a stack of layers trained with a loss and an optimizer.

The network owns the structure (layers, loss, optimizer, metrics, dtype,
random state); training runs in `_training.Trainer` over the data adapters
of `_adapters`, native plans come from `_plans.NetworkPlans`, input checks
from `_data`, and the model file from `saving`."""
from __future__ import annotations

from typing import List, Optional, Sequence

import threading
import weakref
from contextlib import nullcontext

import numpy as np

from . import (_adapters, _budget, _checks, _custom_loops, _summary, _training, _weights_file,
               article)
from ._undo import Snapshot
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import saving
from ._data import check_positive_int, check_shape, network_inputs
from ._fit_config import FitConfig
from ._guard import RunGuard
from ._masking import link_masks
from ._plans import NetworkPlans
from ._threads import begin_native_run, end_native_run
from .callbacks import History
from .errors import in_layer
from .layers.base import Layer


class Network:
    """A feed-forward stack of layers.

    Given `input_shape` (the shape of one sample), the network is built at
    once, every layer as it is added, and inputs of any other shape are
    refused; without it, it is built from the first data it sees.  When
    every layer, the loss and the optimizer are native, training and
    prediction run whole batches in single native calls; otherwise the
    network runs its layers one by one in Python, with the same numbers.

    Parameters
    ----------
    layers : sequence of Layer, optional
        The layers, first to last; more can be appended with `add`.
    input_shape : tuple of int, optional
        The shape of one sample (without the batch axis).
    dtype : {"float32", "float64"}, default "float32"
        The floating-point type of weights and computations.
    seed : int, optional
        Seeds weight initialization, shuffling and dropout, so that two runs
        with the same seed give the same numbers.

    Raises
    ------
    ValueError
        If `dtype` is neither float32 nor float64, or a layer does not fit
        `input_shape` (the message names the layer's index and class).

    See Also
    --------
    load : read a network saved with `save`.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    >>> y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    >>> net = nncore.Network([nncore.Dense(8, activation="tanh"),
    ...                       nncore.Dense(1, activation="sigmoid")], seed=0)
    >>> net.use("binary_crossentropy", optimizer=nncore.optimizers.Adam(0.05))
    Network(...)
    >>> history = net.fit(x, y, epochs=300, batch_size=4, verbose=0)
    >>> (net.predict(x) > 0.5).astype(int).ravel()
    array([0, 1, 1, 0])
    """

    def __init__(self, layers: Optional[Sequence[Layer]] = None,
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
        self.loss = None        # a losses.Loss or article.FunctionLoss
        self.optimizer: Optional[optimizers_module.Optimizer] = None
        self.metrics: list = []
        self.loss_from_functions = False   # use(loss, loss_prime) was given functions
        self.history: Optional[History] = None
        self.stop_training = False       # set by callbacks to end fit after this batch
        self.stopped_on_nan = False      # set by TerminateOnNaN
        self.training_optimizer: Optional[optimizers_module.Optimizer] = None
        self.trainer: Optional[_training.Trainer] = None   # the fit running now
        self.default_optimizer: Optional[optimizers_module.Optimizer] = None
        self.shuffle_state: Optional[np.ndarray] = None   # see Trainer.shuffle_state
        self.built = False
        self._build_lock = threading.Lock()      # threads may build at once (lazily)
        self.plans = NetworkPlans()
        self.guard = RunGuard()
        for layer in layers or []:
            self.add(layer)

    # ----------------------------------------------------------------- structure
    def add(self, layer: Layer) -> "Network":
        """Append a layer; returns the network so calls can be chained.  When
        the input shape is known, the layer is built at once."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Network.add takes a nncore Layer, got {type(layer).__name__}")
        if self.plans.used:
            raise RuntimeError("Network.add: the network has already been used; "
                               "add every layer before the first fit or predict")
        new = list(_nested(layer))
        for index, existing in enumerate(self.layers):
            for inner in _nested(existing):
                if any(inner is part for part in new):
                    where = f"layer {index}" if inner is existing else f"inside layer {index}"
                    raise ValueError(f"Network.add: this {type(inner).__name__} object is "
                                     f"already {where} of the network; each position needs "
                                     f"its own layer object")
        for part in new:
            owner = part._network
            if owner is not None and owner() is not None and owner() is not self:
                raise ValueError(f"Network.add: this {type(part).__name__} object already "
                                 f"belongs to another network (layers hold their network's "
                                 f"weights); create a new layer, or use network.copy()")
        with self._build_lock, Snapshot(self, *new):
            for part in new:
                part._network = weakref.ref(self)
            self.layers.append(layer)
            if self.input_shape is not None:
                _build_layers(self, len(self.layers) - 1)
        return self

    def use(self, loss, loss_prime=None, optimizer=None, metrics=None) -> "Network":
        """Set the loss (a name, a Loss, or loss and loss_prime functions as
        in the article), optionally the optimizer (a name or an Optimizer) and the
        metrics reported by fit and evaluate (names such as 'accuracy',
        'top_k_accuracy', 'mae', Metric objects or functions).  Everything is
        checked before anything is set: a call that raises changes nothing."""
        new_loss, from_functions = article.use_loss(loss, loss_prime)
        new_optimizer = None if optimizer is None else optimizers_module.get(optimizer)
        if isinstance(metrics, (str, bytes)) or (metrics is not None and
                                                 not isinstance(metrics, (list, tuple))):
            raise TypeError(f"Network.use: metrics must be a list of names, Metric objects "
                            f"or functions, got {metrics!r}")
        new_metrics = list(metrics or [])
        for metric in new_metrics:
            metrics_module.get(metric)  # unknown names fail here, not in fit
        self.loss, self.optimizer, self.metrics = new_loss, new_optimizer, new_metrics
        self.loss_from_functions = from_functions
        self.plans.forget_training()
        return self

    def build(self, input_shape: Optional[Sequence[int]] = None) -> "Network":
        """Create every layer's weights for samples of `input_shape` (a
        network built, or given `input_shape=`, refuses another shape)."""
        if input_shape is not None and self.input_shape is not None and self.layers:
            given = check_shape(input_shape, "Network: input_shape")
            if given != self.input_shape:
                raise ValueError(in_layer(0, self.layers[0], f"expected input shape "
                                 f"{(None,) + self.input_shape}, received {(None,) + given}"))
        with self._build_lock:
            if self.built:
                return self
            if not self.layers:
                raise RuntimeError("Network: add at least one layer before building")
            shape = input_shape if input_shape is not None else self.input_shape
            if shape is None:
                raise RuntimeError("Network: the input shape is unknown; pass input_shape= "
                                   "or call fit first")
            with Snapshot(self):       # a failed build leaves no layer half-built
                self.input_shape = check_shape(shape, "Network: input_shape")
                _build_layers(self, 0)
        return self

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.built else None

    @property
    def params(self) -> List[np.ndarray]:
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> List[np.ndarray]:
        return [g for layer in self.layers for g in layer.grads]

    @property
    def penalties(self) -> list:
        """The native weight penalties of the layers' regularizers."""
        return [p for layer in self.layers for p in layer.penalty_ops()]

    def regularization_loss(self) -> float:
        """The sum of the layers' regularizer penalties on the current
        weights (the part of the training loss that fit adds to the data loss)."""
        return float(sum(p.value() for p in self.penalties))

    # ------------------------------------------------------------ train, use
    def fit(self, x, y=None, epochs: int = 1, batch_size: Optional[int] = None,
            validation_data=None, validation_split: float = 0.0, shuffle: bool = True,
            verbose: int = 1, callbacks: Optional[list] = None, initial_epoch: int = 0,
            learning_rate: Optional[float] = None, sample_weight=None,
            class_weight: Optional[dict] = None, wait: Optional[float] = None) -> History:
        """Train on x, y from epoch `initial_epoch` up to `epochs`; returns a
        History (also kept as `network.history`).

        x may also be a dask array (y a dask or NumPy array of targets) or a
        sequence or iterable of (x, y) or (x, y, sample_weight) batches (y
        None): fit then streams one block or batch at a time (see
        nncore/_adapters.py).  `sample_weight` (n,) weighs each sample's
        loss (a batch's loss is sum_i w_i loss_i / batch size, as in Keras);
        `class_weight` maps class indices to weights that multiply it.

        The training style is chosen once per fit (nncore/article.py):
        networks whose loss was given as functions (`use(mse, mse_prime)`),
        or made only of `FCLayer`, `ActivationLayer`, `ConvLayer` and
        `FlattenLayer`, default to batch_size=1 (per-sample SGD) and print
        `epoch i/N   error=...` per epoch when verbose (followed by the
        metrics and validation figures, if any).  All other networks default
        to batch_size=32 and, with verbose=1, show a progress bar (one line
        per epoch when the output is not a terminal; verbose=2 always one line
        per epoch).  Without an optimizer set in `use`, training is plain SGD
        with rate 0.01.  `learning_rate` applies to this call only: it
        replaces the optimizer's rate (or schedule) until fit returns, and the
        optimizer given to `use` keeps its own.  `validation_split` holds out
        the last fraction of x, y (before shuffling).  A loss on
        probabilities after a last layer that does not output them (or a
        loss on logits after a softmax or sigmoid) gives a UserWarning on the
        first batch.  A NaN or inf loss raises FloatingPointError naming the
        epoch and batch, unless a TerminateOnNaN callback ends training.
        The weights and optimizer state of the last finite step are put back
        first (see `History.stopped`).  A second fit, or a fit while a predict
        on this network runs in another thread, raises RuntimeError at once,
        or, with `wait=seconds`, once it has waited that long for the network
        to be free (new predictions are refused while it waits).
        """
        wait = _checked_wait(wait, "Network.fit")
        if self.loss is None:
            raise RuntimeError("Network.fit: set a loss with use(...) before fit")
        config = FitConfig(epochs=epochs, batch_size=batch_size,
                           validation_data=validation_data, validation_split=validation_split,
                           shuffle=shuffle, verbose=verbose, callbacks=callbacks,
                           initial_epoch=initial_epoch, learning_rate=learning_rate,
                           sample_weight=sample_weight, class_weight=class_weight)
        with self.guard.writing("Network.fit", wait):
            undo = Snapshot(self)
            try:
                trainer = _training.Trainer(self, config,
                                            _adapters.fit_data(self, x, y, config))
            except BaseException:
                undo.restore()            # fit's set-up changes nothing when it fails
                raise
            return trainer.run(undo)

    def evaluate(self, x, y=None, batch_size: Optional[int] = None, verbose=0,
                 return_dict: bool = True, sample_weight=None):
        """{'loss': ..., <metric>: ...} of the network on x, y (means over the
        samples; with sample_weight the loss is sum_i w_i loss_i / n, the
        metrics stay unweighted); with return_dict=False, as Keras: the loss
        alone, or the list ``[loss, *metrics]`` when there are metrics.  x may be
        a dask array or batches, as in fit.  `verbose` is accepted for Keras
        code; evaluate prints nothing."""
        _checks.check_verbose(verbose, "Network.evaluate")
        scores = _training.evaluate(self, x, y, batch_size, sample_weight)
        if return_dict:
            return scores
        return scores["loss"] if len(scores) == 1 else list(scores.values())

    def predict(self, x, batch_size: Optional[int] = None, verbose=0) -> np.ndarray:
        """The network output for every sample of x, shape (n,) + output_shape,
        computed in chunks of `batch_size` samples (by default at most 256,
        fewer when that would take more than about 8 MiB of activations or
        leave a core without a chunk).  Threads may predict at once; while a fit runs in another thread this raises
        RuntimeError.  A dask array or a sequence/iterable of batches is
        predicted one block at a time into a NumPy array (nncore.dask.predict
        gives a dask array).  `verbose` is accepted for Keras code; predict
        prints nothing."""
        _checks.check_verbose(verbose, "Network.predict")
        if not self.built and self.input_shape is None:
            raise RuntimeError("Network.predict: the network is not built yet; "
                               "fit it, call build(input_shape) or pass input_shape=")
        if _adapters.is_stream(x):
            return _predict_stream(self, x, batch_size)
        x = network_inputs(self, x)
        n = x.shape[0]
        if batch_size is not None:
            batch_size = check_positive_int(batch_size, "batch_size")
        with self.guard.reading("Network.predict"):
            plan = self.plans.predict_plan(self)
            chunk, workers, blas_threads = self.plans.predict_schedule(self, n, batch_size)
            if plan is None:
                return _predict_python(self, x, chunk)
            out = np.empty((n, plan.out_size), self.dtype)
            begin_native_run(blas_threads)
            try:
                plan.predict(x.reshape(n, -1), out, chunk, workers)
            finally:
                end_native_run()
            return out.reshape((n,) + self.output_shape)

    def predict_classes(self, x, batch_size: Optional[int] = None) -> np.ndarray:
        """Class indices: argmax over the last axis, or output > 0.5 for a
        single output unit."""
        out = self.predict(x, batch_size)
        if out.shape[-1] == 1:
            return (out[..., 0] > 0.5).astype(np.int64)
        return out.argmax(-1)

    # ------------------------------------------------------------ custom loops
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None,
                       return_dict: bool = False):
        """One training step on the batch x, y -- the step fit takes on that
        batch; returns its loss (with regularizer penalties), or
        ``[loss, *metrics]`` when there are metrics (a dict with
        return_dict=True)."""
        return _custom_loops.train_on_batch(self, x, y, sample_weight, class_weight,
                                            return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict: bool = False):
        """The loss (and metrics) on one batch, as train_on_batch returns them."""
        return _custom_loops.test_on_batch(self, x, y, sample_weight, return_dict)

    def predict_on_batch(self, x) -> np.ndarray:
        """The outputs for one batch, computed as one chunk."""
        return _custom_loops.predict_on_batch(self, x)

    def gradients(self, x, y, sample_weight=None) -> List[np.ndarray]:
        """The gradients of the batch loss (with regularizer penalties)
        w.r.t. `params`, in that order, as fit's training step computes them
        (layers in training mode); nothing is updated.  Apply them with
        `network.optimizer.apply_gradients(grads)`."""
        return _custom_loops.gradients(self, x, y, sample_weight)

    # ---------------------------------------------------------------- summary
    def summary(self, print_fn=print, plan: bool = False) -> str:
        """A table of the layers, their output shapes and parameter counts
        (before the network is built: those the layers' own sizes give).
        With `plan`, then the native ops that run the network for inference
        and for training, the layers each computes and the algorithm."""
        text = _summary.summary_text(self)
        if plan:
            text += "\n\n" + _summary.plan_text(self)
        if print_fn is not None:
            print_fn(text)
        return text

    def count_params(self) -> int:
        """The number of trained parameters (the network must be built)."""
        if not self.built:
            raise RuntimeError("Network.count_params: the network is not built yet; "
                               "pass input_shape=, call build(input_shape) or fit first")
        return sum(layer.count_params() for layer in self.layers)

    def compile(self, optimizer=None, loss=None, metrics=None) -> "Network":
        """Keras' name for `use`: use(loss, optimizer=optimizer, metrics=metrics)."""
        if loss is None:
            raise ValueError("Network.compile: give a loss, e.g. compile(optimizer='adam', "
                             "loss='sparse_categorical_crossentropy')")
        return self.use(loss, optimizer=optimizer, metrics=metrics)

    def __repr__(self) -> str:
        return f"Network({len(self.layers)} layers, dtype={self.dtype})"

    # ----------------------------------------------------------------- saving
    def save(self, path, include_optimizer: bool = True) -> None:
        """Write the network to `path` (atomically); `nncore.load(path)` reads it."""
        _checks.check_save_path(path, "Network.save")
        with self.guard.reading("Network.save"):
            saving.save(self, path, include_optimizer)

    def save_weights(self, path) -> None:
        """Write only the weights (and layer state) to `path`, atomically."""
        with self.guard.reading("Network.save_weights"):
            _weights_file.save_weights(self, path)

    def load_weights(self, path) -> None:
        """Read `save_weights` arrays into this (built) network, checking them
        all before changing anything (an unbuilt network it had to build is
        unbuilt again when the file is refused)."""
        if self.built:
            _weights_file.load_weights(self, path)
            return
        with Snapshot(self):
            _weights_file.load_weights(self, path)

    def get_config(self) -> dict:
        """The structure as JSON data: dtype, input shape, seed, layers, loss, optimizer."""
        return saving.network_config(self)

    @classmethod
    def from_config(cls, config: dict) -> "Network":
        """A new network (fresh weights) from `get_config()` output; built
        when the config has an input shape."""
        net = saving.network_from_config(config, cls)
        return net.build() if net.input_shape is not None else net

    def get_weights(self) -> List[np.ndarray]:
        """Copies of every layer's parameters and state arrays, in layer order."""
        with self.guard.reading("Network.get_weights"):
            return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[np.ndarray], wait: Optional[float] = None) -> None:
        """Copy `get_weights()`-style arrays into the network, checking the
        count, shapes and dtypes first (nothing is changed on a mismatch).
        Like fit, it needs the network alone: `wait=seconds` waits that long
        for predictions in other threads to end."""
        wait = _checked_wait(wait, "Network.set_weights")
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
                raise type(error)(in_layer(index, layer, error)) from None
            start += count
        # a callback of this thread's fit may set the weights: the fit holds the guard
        with (nullcontext() if self.guard.fitting_here()
              else self.guard.writing("Network.set_weights", wait)):
            for layer, arrays in zip(self.layers, checked):
                layer.set_weights(arrays)

    def copy(self) -> "Network":
        """An independent copy (weights, optimizer state and random state)."""
        return loads(self._dumps("Network.copy"))

    def __reduce__(self):
        # pickle, copy.deepcopy and multiprocessing go through the model format
        return (loads, (self._dumps("pickling a Network"),))

    def _dumps(self, caller: str) -> bytes:
        with self.guard.reading(caller):
            return saving.dumps(self)


def _nested(layer: Layer):
    """`layer` and the layers inside it (a Residual block's), depth first."""
    yield layer
    for inner in getattr(layer, "layers", ()):
        yield from _nested(inner)


def _checked_wait(wait, caller: str) -> Optional[float]:
    if wait is None:
        return None
    if isinstance(wait, bool) or not isinstance(wait, (int, float, np.integer, np.floating)) \
            or not 0 <= wait < float("inf"):
        raise ValueError(f"{caller}: wait must be a number of seconds >= 0, got {wait!r}")
    return float(wait)


def _build_layers(net: Network, first: int) -> None:
    """Build layers first.. of `net` on the output of the layer before them."""
    assert net.input_shape is not None
    shape = net.input_shape if first == 0 else \
        tuple(net.layers[first - 1]._built_output_shape())
    params = sum(layer.count_params() for layer in net.layers[:first])
    for index in range(first, len(net.layers)):
        layer = net.layers[index]
        layer.dtype = net.dtype
        layer.rng = net.rng
        if index and getattr(layer, "reads_indices", False):
            raise ValueError(in_layer(index, layer, "reads integer indices, so it must be "
                                                    "the network's first layer"))
        try:
            params += _budgeted_params(net, layer, shape, params)
            layer.build(shape)
        except (ValueError, TypeError) as error:
            raise type(error)(in_layer(index, layer, error)) from None
        for p in layer.params:
            if p.dtype != net.dtype or not p.flags.c_contiguous:
                raise TypeError(in_layer(index, layer, f"parameters must be C-contiguous "
                                                      f"{net.dtype} arrays, got {p.dtype}"))
        if layer.output_shape is None:
            raise TypeError(in_layer(index, layer, "build() did not set output_shape"))
        shape = tuple(layer.output_shape)
    link_masks(net.layers)
    net.built = True


def _budgeted_params(net: Network, layer: Layer, shape, before: int) -> int:
    """The parameter count of `layer` on input `shape`, checked (with the
    `before` parameters of the layers before it) against the memory budget
    before the layer draws any weight."""
    shapes = layer.weight_shapes(shape) or []
    count = sum(int(np.prod(s, dtype=object)) for s in shapes)
    what = f"{count:,} parameters" if not before else \
        f"{count:,} parameters (and {before:,} in the layers before)"
    _budget.check((before + count) * net.dtype.itemsize, what)
    return count


def _predict_stream(net: Network, x, batch_size: Optional[int]) -> np.ndarray:
    """Network.predict over a stream: the outputs of every block, in order."""
    blocks = _adapters.Blocks(x)
    if not _adapters.is_dask_array(x):
        return np.concatenate([net.predict(xb, batch_size) for xb, _, _ in blocks.batches()])
    net.build()
    out = np.empty((len(x),) + tuple(net.output_shape), net.dtype)
    start = 0
    for xb, _, _ in blocks.batches():
        part = net.predict(xb, batch_size)
        out[start:start + len(part)] = part
        start += len(part)
    return out


def _predict_python(net: Network, x: np.ndarray, chunk: int) -> np.ndarray:
    """Predict through the layers' own forward, for networks with Python layers."""
    parts = []
    for start in range(0, x.shape[0], chunk):
        out = x[start:start + chunk]
        for layer in net.layers:
            out = layer.forward(out, training=False)
        parts.append(np.asarray(out, dtype=net.dtype))
    return np.concatenate(parts)


def load(path) -> Network:
    """The network saved in `path` by `Network.save`.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    Network
        The network with its layers, weights, loss, metrics and (if it was
        saved) optimizer state.

    Raises
    ------
    ModelFormatError
        If the file is damaged, hostile, from a newer format or names a
        class that is not registered.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Dense(3)], input_shape=(2,), seed=0)
    >>> net.save("tiny.nncore")
    >>> again = nncore.load("tiny.nncore")
    >>> x = np.ones((1, 2), dtype=np.float32)
    >>> bool(np.array_equal(again.predict(x), net.predict(x)))
    True
    """
    return saving.load(path, Network)


def loads(data: bytes) -> Network:
    """The network in the model-file bytes `data` (see `saving.dumps`)."""
    return saving.loads(data, Network)
