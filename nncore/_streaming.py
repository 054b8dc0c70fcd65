"""Out-of-core fit, evaluate and predict: data that arrives one block at a time.

A *stream* is a dask array (with targets as a dask or NumPy array), or a
sequence or iterable of batches, each `x`, `(x, y)` or `(x, y, sample_weight)`
(a Keras `PyDataset`-like object, a generator, a list of tuples).  Only a few
blocks are in memory at once: the one being trained on and the next one,
loaded by a background thread meanwhile.  Blocks of dask arrays and of
sequences are visited in an order shuffled from the network's seed, and the
samples of each block are shuffled by the native training loop; iterables
are read in their own order.  dask is never imported here: dask arrays are
recognised by their attributes and computed with their own `compute`.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np

from . import _weights
from . import callbacks as callbacks_module
from ._data import check_positive_int
from ._native.data import shuffle as shuffle_order
from ._threads import begin_native_run, end_native_run
from .callbacks import History


def is_dask_array(x) -> bool:
    return hasattr(x, "__dask_graph__") and hasattr(x, "blocks") and hasattr(x, "chunks")


def _is_batch_tuple(item) -> bool:
    return (isinstance(item, tuple) and len(item) in (2, 3)
            and all(part is None or np.ndim(part) >= 1 for part in item))


def is_stream(x) -> bool:
    """True for data that fit/evaluate/predict read block by block."""
    if is_dask_array(x):
        return True
    if isinstance(x, (np.ndarray, str, bytes)) or hasattr(x, "__array__") \
            or hasattr(x, "__array_interface__"):
        return False
    if isinstance(x, (list, tuple)):
        # a list of (x, y) batches; a list of per-sample arrays is plain data
        return len(x) > 0 and _is_batch_tuple(x[0])
    return hasattr(x, "__iter__") or (hasattr(x, "__getitem__") and hasattr(x, "__len__"))


class Blocks:
    """The blocks of a stream: `count` (None for an iterable), `load(i)`
    giving (x, y, sample_weight) NumPy arrays (y, sample_weight may be None),
    and `batches()` iterating them in the given order."""

    def __init__(self, x, y=None, sample_weight=None):
        self.iterable: Optional[object] = None
        self.dask_shape: Optional[tuple] = None
        if is_dask_array(x):
            self._from_dask(x, y, sample_weight)
        else:
            if y is not None or sample_weight is not None:
                raise ValueError("for a sequence or iterable of batches, y and sample_weight "
                                 "come in the batches: (x, y) or (x, y, sample_weight); "
                                 "pass y=None")
            if hasattr(x, "__getitem__") and hasattr(x, "__len__"):
                self.count: Optional[int] = len(x)
                self._load: Callable = lambda i: _unpack(x[i])
            else:
                self.count = None
                self.iterable = x
        if self.count == 0:
            raise ValueError("the data holds no batches")

    def _from_dask(self, x, y, sample_weight):
        if x.ndim < 2:
            raise ValueError(f"x must be batch first with at least two axes, got shape {x.shape}")
        if any(len(c) > 1 for c in x.chunks[1:]):
            x = x.rechunk({axis: -1 for axis in range(1, x.ndim)})
        rows = x.chunks[0]
        self.dask_shape = tuple(x.shape[1:])
        starts = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        parts = [_aligned(y, rows, starts, "y"), _aligned(sample_weight, rows, starts,
                                                              "sample_weight")]
        self.count = len(rows)

        def load(i):
            pieces = [x.blocks[i]] + [p(i) for p in parts]
            lazy = [j for j, piece in enumerate(pieces) if is_dask_array(piece)]
            if lazy:
                computed = _compute([pieces[j] for j in lazy])
                for j, value in zip(lazy, computed):
                    pieces[j] = value
            return tuple(pieces)
        self._load = load

    def load(self, i: int):
        return self._load(i)

    def shape(self) -> tuple:
        """The shape of one sample (loads the first batch of a sequence)."""
        if self.dask_shape is not None:
            return self.dask_shape
        return tuple(np.shape(self.load(0)[0])[1:])

    def batches(self, order: Optional[np.ndarray] = None) -> Iterator[tuple]:
        """(x, y, sample_weight) of every block in `order`; the next block
        loads in a background thread while the caller works on the current one."""
        if self.count is None:
            items = (_unpack(item) for item in self._iterate())
        else:
            indices = order if order is not None else range(self.count)
            items = (self.load(int(i)) for i in indices)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(next, items, None)
            while True:
                item = pending.result()
                if item is None:
                    return
                pending = pool.submit(next, items, None)
                yield item

    def _iterate(self):
        iterator = iter(self.iterable)
        if iterator is self.iterable and getattr(self, "_used", False):
            raise ValueError("an iterator can be read only once: pass a sequence, or an "
                             "iterable whose iter() starts again, to run several epochs")
        self._used = True
        return iterator


def _compute(pieces: list) -> list:
    # one compute call for the block of x, y and w, so they share the graph
    import dask
    return list(dask.compute(*pieces))


def _aligned(data, rows, starts, what):
    """A function i -> block i of data along the rows of x (None, a NumPy
    slice, or a dask block)."""
    if data is None:
        return lambda i: None
    total = int(starts[-1])
    if len(data) != total:
        raise ValueError(f"x has {total} samples but {what} has {len(data)}")
    if is_dask_array(data):
        if data.chunks[0] != tuple(rows) or any(len(c) > 1 for c in data.chunks[1:]):
            data = data.rechunk((tuple(rows),) + tuple(-1 for _ in data.shape[1:]))
        return lambda i: data.blocks[i]
    return lambda i: data[starts[i]:starts[i + 1]]


def _unpack(item) -> tuple:
    if _is_batch_tuple(item):
        return tuple(item) + (None,) * (3 - len(item))
    return item, None, None


# ------------------------------------------------------------------- fit
def fit(net, x, y, epochs, batch_size, validation_data, validation_split, shuffle, verbose,
        callbacks, initial_epoch, learning_rate, sample_weight, class_weight) -> History:
    """Network.fit over a stream (see the module docstring)."""
    if net.loss is None:
        raise RuntimeError("Network.fit: set a loss with use(...) before fit")
    epochs = check_positive_int(epochs, "epochs")
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) \
            or not 0 <= initial_epoch < epochs:
        raise ValueError(f"initial_epoch must be an integer in [0, epochs={epochs}), "
                         f"got {initial_epoch!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if validation_split:
        raise ValueError("fit: validation_split needs in-memory arrays; pass validation_data "
                         "with dask arrays or batches")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    elif is_dask_array(x):
        batch_size = 32
    if is_dask_array(x) and y is None:
        raise ValueError("fit: x is a dask array, so y must be its targets (a dask or "
                         "NumPy array)")
    if validation_data is not None and (not isinstance(validation_data, (tuple, list))
                                        or len(validation_data) != 2):
        raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, callbacks_module.Callback):
            raise TypeError(f"callbacks must be nncore.callbacks.Callback objects, "
                            f"got {type(callback).__name__}")
    blocks = Blocks(x, y, sample_weight)
    run = StreamTraining(net, blocks, epochs, initial_epoch, batch_size, shuffle,
                         validation_data, callbacks, verbose, learning_rate, class_weight)
    return run.run()


class StreamTraining:
    """One `fit` over a stream: each block is checked like fit's arrays and
    trained on with the native loop (the per-layer Python loop for networks
    with Python layers), batch_size samples per step."""

    def __init__(self, net, blocks, epochs, initial_epoch, batch_size, shuffle, validation,
                 callbacks, verbose, learning_rate, class_weight):
        self.net, self.blocks, self.epochs = net, blocks, epochs
        self.initial_epoch, self.batch_size, self.shuffle = initial_epoch, batch_size, shuffle
        self.validation, self.callbacks, self.verbose = validation, callbacks, verbose
        self.learning_rate, self.class_weight = learning_rate, class_weight
        self.history = callbacks_module.History()
        self.optimizer = None
        self.plan = None

    def _start(self, x=None) -> None:
        """The optimizer and plan, once the network is built (from the first
        block's samples when nothing else gives their shape)."""
        net = self.net
        if x is not None:
            net._inputs(x)
        self.optimizer = net._fit_optimizer(self.learning_rate)
        self.plan = net._training_plan(self.optimizer)
        self.metrics = net._resolved_metrics()
        self.state = net._shuffle_generator() if self.shuffle else None

    def run(self) -> History:
        net = self.net
        net.history = self.history
        net.stop_training = False
        net.stopped_on_nan = False
        for callback in self.callbacks:
            callback.set_network(net)
            callback.on_train_begin()
        logs: dict = {}
        if not net.built and net.input_shape is None and self.blocks.count is not None:
            net.build(self.blocks.shape())
        if net.built or net.input_shape is not None:
            self._start()
        for epoch in range(self.initial_epoch, self.epochs):
            for callback in self.callbacks:
                callback.on_epoch_begin(epoch)
            logs = self._epoch(epoch)
            if net.stop_training and not logs:
                break
            if self.validation is not None:
                scores = net.evaluate(*self.validation)
                logs.update({"val_" + key: value for key, value in scores.items()})
            for callback in self.callbacks:
                callback.on_epoch_end(epoch, logs)
            self.history.on_epoch_end(epoch, logs)
            if self.verbose:
                print(f"epoch {epoch + 1}/{self.epochs}   " + "   ".join(
                    f"{key}={value:.6g}" for key, value in logs.items()))
            if net.stop_training:
                break
        for callback in self.callbacks:
            callback.on_train_end(logs)
        return self.history

    def _order(self) -> Optional[np.ndarray]:
        count = self.blocks.count
        if count is None:
            return None
        order = np.arange(count, dtype=np.int64)
        if self.state is not None:
            shuffle_order(order, self.state)
        return order

    def _epoch(self, epoch: int) -> dict:
        """Train on every block once; the epoch's logs (empty when stopped
        before any sample)."""
        samples, loss_sum = 0, 0.0
        metric_sums = np.zeros(len(getattr(self, "metrics", [])))
        order = self._order() if self.optimizer is not None else None
        for block, (x, y, w) in enumerate(self.blocks.batches(order)):
            if self.optimizer is None:
                self._start(x)
                metric_sums = np.zeros(len(self.metrics))
            n, block_loss, block_metrics = self._block(x, y, w, epoch, block)
            samples += n
            loss_sum += block_loss
            metric_sums += block_metrics
            logs = {"loss": block_loss / n, "size": n}
            for callback in self.callbacks:
                callback.on_batch_end(block, logs)
            if self.net.stop_training:
                break
        if samples == 0:
            return {}
        logs = {"loss": loss_sum / samples}
        for metric, total in zip(self.metrics, metric_sums):
            logs[metric.name] = float(total / samples)
        return logs

    def _block(self, x, y, w, epoch: int, block: int) -> Tuple[int, float, np.ndarray]:
        """Train on one block; (samples, sum of the sample losses, sums of the
        metrics over its samples)."""
        net, optimizer = self.net, self.optimizer
        if y is None:
            raise ValueError(f"batch {block}: expected (x, y) or (x, y, sample_weight), "
                             f"got x alone")
        x = net._inputs(x)
        n = x.shape[0]
        y = net._targets(y, n)
        weights = _weights.combined(net, y, w, self.class_weight)
        batch_size = self.batch_size or n
        steps = math.ceil(n / batch_size)
        sizes = np.full(steps, batch_size, np.float64)
        sizes[-1] = n - batch_size * (steps - 1)
        order = np.arange(n, dtype=np.int64)
        metric_sums = np.zeros(len(self.metrics))
        # training metrics need each step's outputs: then run one step per call
        chunk = 1 if self.metrics else steps
        losses: List[np.ndarray] = []
        for first in range(0, steps, chunk):
            count = min(chunk, steps - first)
            rates = optimizer.learning_rates(optimizer.iterations, count)
            if self.plan is not None:
                begin_native_run(net._blas_threads_for(batch_size))
                try:
                    part = self.plan.train(x.reshape(n, -1), y, order, batch_size, first,
                                           rates, self.state, weights)
                finally:
                    end_native_run()
            else:
                part = net._train_python(x, y, order, batch_size, first, rates, optimizer,
                                         self.state, weights)
            losses.append(part)
            if self.metrics:
                size = int(sizes[first])
                out, target = (self.plan.last_batch(size) if self.plan is not None
                               else net._last_batch)
                out, target = net._shaped(out, target)
                for j, metric in enumerate(self.metrics):
                    metric_sums[j] += metric(target, out) * size
        step_losses = np.concatenate(losses)
        if not np.isfinite(step_losses).all():
            bad = int(np.argmax(~np.isfinite(step_losses)))
            raise FloatingPointError(
                f"Network.fit: the loss became {step_losses[bad]} at epoch {epoch + 1}/"
                f"{self.epochs}, block {block + 1}, batch {bad + 1}/{steps}; lower the "
                f"learning rate, scale the inputs or clip gradients (clipnorm=...)")
        return n, float(step_losses @ sizes), metric_sums


# --------------------------------------------------------- evaluate, predict
def evaluate(net, x, y, batch_size, sample_weight) -> dict:
    """Network.evaluate over a stream: sums over the blocks, divided by the
    number of samples."""
    samples, loss_sum = 0, 0.0
    metrics = None
    sums: np.ndarray = np.zeros(0)
    for xb, yb, wb in Blocks(x, y, sample_weight).batches():
        if yb is None:
            raise ValueError("Network.evaluate: expected (x, y) batches, got x alone")
        xb = net._inputs(xb)
        n = xb.shape[0]
        yb = net._targets(yb, n)
        weights = _weights.combined(net, yb, wb, None)
        out, target = net._shaped(net.predict(xb, batch_size), yb)
        if metrics is None:
            metrics = net._resolved_metrics()
            sums = np.zeros(len(metrics))
        loss = net.loss(target, out, sample_weight=weights) if weights is not None \
            else net.loss(target, out)
        loss_sum += float(loss) * n
        for j, metric in enumerate(metrics):
            sums[j] += float(metric(target, out)) * n
        samples += n
    scores = {"loss": loss_sum / samples}
    for metric, total in zip(metrics or [], sums):
        scores[metric.name] = float(total / samples)
    return scores


def predict(net, x, batch_size) -> np.ndarray:
    """Network.predict over a stream: the outputs of every block, in order."""
    blocks = Blocks(x)
    if not is_dask_array(x):
        return np.concatenate([net.predict(xb, batch_size) for xb, _, _ in blocks.batches()])
    net.build()
    out = np.empty((len(x),) + tuple(net.output_shape), net.dtype)
    start = 0
    for xb, _, _ in blocks.batches():
        part = net.predict(xb, batch_size)
        out[start:start + len(part)] = part
        start += len(part)
    return out
