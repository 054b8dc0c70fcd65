"""Out-of-core fit, evaluate and predict: data that arrives one block at a time.

A *stream* is a dask array (with targets as a dask or NumPy array), or a
sequence or iterable of batches, each `x`, `(x, y)` or `(x, y, sample_weight)`
(a Keras `PyDataset`-like object, a generator, a list of tuples).  Only a few
blocks are in memory at once: the one being trained on and the next one,
loaded by a background thread meanwhile.  Blocks of dask arrays and of
sequences are visited in an order shuffled from the network's seed, and the
samples of each block are shuffled by the native training loop; iterables
are read in their own order.  dask arrays are recognised by their
attributes; dask itself is imported only to compute one of their blocks, so
`import nncore` never imports it.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Optional

import numpy as np

from . import _checks, _weights
from . import callbacks as callbacks_module
from ._data import check_positive_int, network_inputs, network_targets
from ._native.data import shuffle as shuffle_order
from ._training import (Trainer, check_fit_arguments, fit_optimizer, resolved_metrics, shaped,
                        shuffle_state)
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
        self._used = False          # an iterator was read (it cannot start again)
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
        if iterator is self.iterable and self._used:
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
        callbacks, initial_epoch, learning_rate, sample_weight, class_weight,
        wait=None) -> History:
    """Network.fit over a stream (see the module docstring), holding the
    network's run guard like an in-memory fit."""
    net.guard.begin_fit(wait=wait)
    try:
        return _fit(net, x, y, epochs, batch_size, validation_data, validation_split, shuffle,
                    verbose, callbacks, initial_epoch, learning_rate, sample_weight,
                    class_weight)
    finally:
        net.guard.end_fit()


def _fit(net, x, y, epochs, batch_size, validation_data, validation_split, shuffle, verbose,
         callbacks, initial_epoch, learning_rate, sample_weight, class_weight) -> History:
    epochs, learning_rate, callbacks = check_fit_arguments(net, epochs, initial_epoch, verbose,
                                                           learning_rate, callbacks)
    if any(isinstance(c, callbacks_module.BackupAndRestore) for c in callbacks):
        raise TypeError("BackupAndRestore resumes fits on arrays; for a dask array or "
                        "batches, save with ModelCheckpoint and fit again with initial_epoch")
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
    blocks = Blocks(x, y, sample_weight)
    run = StreamTraining(net, blocks, epochs, initial_epoch, batch_size, shuffle,
                         validation_data, callbacks, verbose, learning_rate, class_weight)
    return run.run()


class StreamTraining:
    """One `fit` over a stream.  Each block is checked like fit's arrays and
    trained on for one pass by a `Trainer` (native or Python steps, batch_size
    samples per step, samples shuffled within the block); epochs, callbacks
    and validation are handled here."""

    def __init__(self, net, blocks, epochs, initial_epoch, batch_size, shuffle, validation,
                 callbacks, verbose, learning_rate, class_weight):
        self.net, self.blocks, self.epochs = net, blocks, epochs
        self.initial_epoch, self.batch_size, self.shuffle = initial_epoch, batch_size, shuffle
        self.validation, self.callbacks, self.verbose = validation, callbacks, verbose
        self.learning_rate, self.class_weight = learning_rate, class_weight
        self.history = callbacks_module.History()
        self.optimizer = None
        self.state = None
        self.checked = False        # the loss suits the network's outputs (first block)

    def _start(self) -> None:
        """The optimizer (with fit's learning_rate until run returns) and the
        shuffle generator, once the network is built."""
        self.optimizer = fit_optimizer(self.net)
        if self.learning_rate is not None:
            self.own_rate = self.optimizer.learning_rate
            self.optimizer.learning_rate = self.learning_rate
        self.state = shuffle_state(self.net) if self.shuffle else None

    def run(self) -> History:
        try:
            return self._run()
        finally:
            if self.optimizer is not None and self.learning_rate is not None:
                self.optimizer.learning_rate = self.own_rate

    def _run(self) -> History:
        net = self.net
        net.stop_training = False
        net.stopped_on_nan = False
        for callback in self.callbacks:
            callback.set_network(net)
            callback.on_train_begin()
        logs: dict = {}
        if not net.built and net.input_shape is None and self.blocks.count is not None:
            net.build(self.blocks.shape())
        if net.built or net.input_shape is not None:
            net.build()
            self._start()
        for epoch in range(self.initial_epoch, self.epochs):
            for callback in self.callbacks:
                callback.on_epoch_begin(epoch)
            logs = self._epoch(epoch)
            if not logs:
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
        net.history = self.history
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
        samples, sums = 0, {}  # type: int, dict
        order = self._order() if self.optimizer is not None else None
        for block, (x, y, w) in enumerate(self.blocks.batches(order)):
            if y is None:
                raise ValueError(f"batch {block}: expected (x, y) or (x, y, sample_weight), "
                                 f"got x alone")
            x = network_inputs(self.net, x)
            if self.optimizer is None:      # an iterable: built from its first batch
                self._start()
            logs = self._block(x, y, w, epoch, block)
            n = x.shape[0]
            samples += n
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + value * n
            for callback in self.callbacks:
                callback.on_batch_end(block, dict(logs, size=n))
            if self.net.stop_training:
                break
        return {key: total / samples for key, total in sums.items()} if samples else {}

    def _block(self, x, y, w, epoch: int, block: int) -> dict:
        """One pass over one block; its mean loss and metrics."""
        net = self.net
        y = network_targets(net, y, x.shape[0])
        weights = _weights.combined(net, y, w, self.class_weight)
        if not self.checked:
            _checks.check_loss_and_outputs(net, x[:self.batch_size or x.shape[0]])
            self.checked = True
        # one epoch over the block; shuffling draws from the network's generator
        trainer = Trainer(net, x, y, self.optimizer, 1, 0, self.batch_size or x.shape[0],
                          self.state is not None, None, [], 0, False, weights)
        try:
            history = trainer.run()
        except FloatingPointError as error:
            raise FloatingPointError(f"{error} (in block {block + 1} of epoch {epoch + 1}/"
                                     f"{self.epochs})") from None
        return {key: values[0] for key, values in history.history.items()}


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
        xb = network_inputs(net, xb)
        n = xb.shape[0]
        yb = network_targets(net, yb, n)
        weights = _weights.combined(net, yb, wb, None)
        out, target = shaped(net, net.predict(xb, batch_size), yb)
        if metrics is None:
            metrics = resolved_metrics(net)
            sums = np.zeros(len(metrics))
        loss = net.loss(target, out, sample_weight=weights) if weights is not None \
            else net.loss(target, out)
        loss_sum += float(loss) * n
        for j, metric in enumerate(metrics):
            sums[j] += float(metric(target, out)) * n
        samples += n
    scores = {"loss": loss_sum / samples + net.regularization_loss()}
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
