"""Data adapters: what `fit` trains on, as blocks of checked arrays.

In-memory arrays are one block (`ArrayData`), trained on for every epoch.
A *stream* (`StreamData`, `Blocks`) is a dask array (with targets as a dask or NumPy array), or a
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
from ._data import network_inputs, network_targets
from ._native.data import shuffle as shuffle_order
from .callbacks import BackupAndRestore
from .utils import split_tail


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


class ArrayData:
    """In-memory x, y (and sample weights) as one block that every epoch
    trains on; `validation` is (x_val, y_val) checked, or None.  A
    validation_split holds out the last fraction of the samples."""

    single = True

    def __init__(self, net, x, y, config):
        if y is None:
            raise ValueError("Network.fit: y is missing; pass the targets, or x as a dask "
                             "array or as batches of (x, y)")
        x = network_inputs(net, x)
        y = network_targets(net, y, x.shape[0])
        weights = _weights.combined(net, y, config.sample_weight, config.class_weight,
                                    nonzero=True)
        validation = _validation(net, x, y, config.validation_data, config.validation_split)
        if validation is not None and config.validation_data is None:
            x, y = x[:-len(validation[0])], y[:-len(validation[0])]
            if weights is not None:
                weights = weights[:len(x)]
        self.block = (x, y, weights)
        self.validation = validation

    def prepare(self, net) -> None:
        """Build the network (arrays built it already)."""

    def default_batch_size(self, style) -> int:
        return style.batch_size


class StreamData:
    """A stream (see the module docstring) read block by block each epoch:
    each block is checked like fit's arrays, with its sample weights times
    class_weight.  `validation` is validation_data as given (evaluate reads
    arrays and streams alike)."""

    single = False

    def __init__(self, net, x, y, config):
        if config.validation_split:
            raise ValueError("fit: validation_split needs in-memory arrays; pass "
                             "validation_data with dask arrays or batches")
        if any(isinstance(c, BackupAndRestore) for c in config.callbacks):
            raise TypeError("BackupAndRestore resumes fits on arrays; for a dask array or "
                            "batches, save with ModelCheckpoint and fit again with initial_epoch")
        self.dask = is_dask_array(x)
        if self.dask and y is None:
            raise ValueError("fit: x is a dask array, so y must be its targets (a dask or "
                             "NumPy array)")
        self.blocks = Blocks(x, y, config.sample_weight)
        self.class_weight = config.class_weight
        self.validation = config.validation_data

    def prepare(self, net) -> None:
        """Build the network when its input shape is known without reading
        an iterable (which is read only once per epoch)."""
        if not net.built and net.input_shape is None and self.blocks.count is not None:
            net.build(self.blocks.shape())
        if net.built or net.input_shape is not None:
            net.build()

    def default_batch_size(self, style) -> Optional[int]:
        """32 samples for dask blocks; a batch of a sequence is one step."""
        return 32 if self.dask else None

    def epoch(self, net, state) -> Iterator[tuple]:
        """The checked (x, y, weights) blocks of one epoch: sequences and
        dask blocks in an order shuffled with `state` (when given)."""
        order = None
        if self.blocks.count is not None:
            order = np.arange(self.blocks.count, dtype=np.int64)
            if state is not None:
                shuffle_order(order, state)
        for block, (x, y, w) in enumerate(self.blocks.batches(order)):
            if y is None:
                raise ValueError(f"batch {block}: expected (x, y) or (x, y, sample_weight), "
                                 f"got x alone")
            x = network_inputs(net, x)
            y = network_targets(net, y, x.shape[0])
            yield x, y, _weights.combined(net, y, w, self.class_weight)


def fit_data(net, x, y, config):
    """The adapter of fit's data."""
    return (StreamData if is_stream(x) else ArrayData)(net, x, y, config)


def _validation(net, x, y, validation_data, validation_split):
    """(x_val, y_val) validated, or None."""
    if validation_data is not None:
        vx = network_inputs(net, validation_data[0], "validation x")
        return vx, network_targets(net, validation_data[1], vx.shape[0])
    if not validation_split:
        return None
    split = float(validation_split)
    if not 0 < split < 1:
        raise ValueError(f"fit: validation_split must be in (0, 1), got {validation_split!r}")
    held = int(x.shape[0] * split)
    if held == 0 or held == x.shape[0]:
        raise ValueError(f"fit: validation_split={split} of {x.shape[0]} samples leaves "
                         f"no training or no validation samples")
    validation = split_tail(x, y, held)
    _checks.check_validation_split(net.loss, y[:-held], validation[1], split)
    return validation
