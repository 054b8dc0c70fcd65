"""The training loop behind `Network.fit`: chunks of native steps, epoch
bookkeeping, validation, metrics, callbacks and progress output."""
from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np

from . import _weights
from . import callbacks as callbacks_module
from ._data import check_positive_float, check_positive_int
from ._progress import Progress
from ._threads import begin_native_run, end_native_run
from .callbacks import History
from .utils import split_tail


def fit(net, x, y, epochs: int = 1, batch_size: Optional[int] = None, validation_data=None,
        validation_split: float = 0.0, shuffle: bool = True, verbose: int = 1,
        callbacks: Optional[list] = None, initial_epoch: int = 0,
        learning_rate: Optional[float] = None, sample_weight=None,
        class_weight=None) -> History:
    """Network.fit (see there): validate the arguments, then run."""
    if net.loss is None:
        raise RuntimeError("Network.fit: set a loss with use(...) before fit")
    epochs = check_positive_int(epochs, "epochs")
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) \
            or not 0 <= initial_epoch < epochs:
        raise ValueError(f"initial_epoch must be an integer in [0, epochs={epochs}), "
                         f"got {initial_epoch!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if learning_rate is not None:
        learning_rate = check_positive_float(learning_rate, "learning_rate")
    article = net._article_loss or (learning_rate is not None and net.optimizer is None)
    batch_size = check_positive_int(batch_size if batch_size is not None
                                    else 1 if article else 32, "batch_size")
    x = net._inputs(x)
    y = net._targets(y, x.shape[0])
    weights = _weights.combined(net, y, sample_weight, class_weight)
    validation = _validation(net, x, y, validation_data, validation_split)
    if validation is not None and validation_data is None:
        x, y = x[:-len(validation[0])], y[:-len(validation[0])]
        if weights is not None:
            weights = weights[:len(x)]
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, callbacks_module.Callback):
            raise TypeError(f"callbacks must be nncore.callbacks.Callback objects, "
                            f"got {type(callback).__name__}")
    optimizer = net._fit_optimizer(learning_rate)
    run = Training(net, x, y, optimizer, epochs, initial_epoch, batch_size, shuffle,
                   validation, callbacks, verbose, article, weights)
    return run.run()


class Training:
    """One `fit` call.  Steps are numbered from 0 over the epochs to run;
    they run natively in chunks that grow to ~20 ms, so that small networks
    pay almost no Python overhead while large ones still report."""

    CHUNK_SECONDS = 0.02

    def __init__(self, net, x, y, optimizer, epochs, initial_epoch, batch_size, shuffle,
                 validation, callbacks, verbose, article, weights=None):
        self.net, self.x, self.y, self.optimizer = net, x, y, optimizer
        self.weights = weights
        self.epochs, self.initial_epoch, self.batch_size = epochs, initial_epoch, batch_size
        self.validation, self.callbacks = validation, callbacks
        self.verbose, self.article = verbose, article
        self.metrics = net._resolved_metrics()
        n = self.n = x.shape[0]
        self.per_epoch = math.ceil(n / batch_size)
        self.sizes = np.full(self.per_epoch, batch_size, np.float64)
        self.sizes[-1] = n - batch_size * (self.per_epoch - 1)
        self.x_flat = x.reshape(n, -1)
        self.order = np.arange(n, dtype=np.int64)
        self.state = net._shuffle_generator() if shuffle else None
        self.plan = net._training_plan(optimizer)
        run_epochs = epochs - initial_epoch
        self.total = run_epochs * self.per_epoch
        self.loss_sums = np.zeros(run_epochs)
        self.metric_sums = np.zeros((run_epochs, len(self.metrics)))
        self.first_iteration = optimizer.iterations
        # training metrics and batch callbacks need one native step per call;
        # epoch hooks (callbacks, validation, progress) end chunks at epochs
        self.per_batch = bool(self.metrics) or any(
            callbacks_module.wants_batches(c) for c in callbacks)
        self.progress = (Progress(verbose, epochs, self.per_epoch)
                         if verbose and not article else None)
        self.by_epoch = (self.per_batch or bool(callbacks) or validation is not None
                         or self.progress is not None)
        # chunks end at multiples of this many steps into an epoch (see _aligned)
        self.align = (self.plan.step_alignment(batch_size)
                      if self.plan is not None and not self.per_batch else 1)
        self.history = callbacks_module.History()

    def run(self) -> History:
        net = self.net
        net.history = self.history
        net.stop_training = False
        net.stopped_on_nan = False
        for callback in self.callbacks:
            callback.set_network(net)
            callback.on_train_begin()
        self.logs: dict = {}
        done, chunk = 0, self.align
        while done < self.total and not net.stop_training:
            k = done % self.per_epoch
            if k == 0:
                self._begin_epoch(self.initial_epoch + done // self.per_epoch)
            count = 1 if self.per_batch else min(chunk, self.total - done)
            if self.by_epoch:
                count = min(count, self.per_epoch - k)
            count = self._aligned(done, count)
            began = time.perf_counter()
            losses = self._steps(done, count)
            if time.perf_counter() - began < self.CHUNK_SECONDS:
                chunk *= 2
            self._account(done, losses)
            if net.stop_training:
                break
            finished = range(done // self.per_epoch, (done + count) // self.per_epoch)
            done += count
            if self.by_epoch:
                for e in finished:
                    self._end_epoch(e)
            elif finished:
                self._record_epochs(finished)
        for callback in self.callbacks:
            callback.on_train_end(self.logs)
        return self.history

    def _aligned(self, done: int, count: int) -> int:
        """Extend a chunk to end a multiple of `align` steps into its epoch (or
        at the epoch's end): per-sample SGD defers updates over windows of
        that many steps, so aligned chunks make results independent of the
        time-based chunk sizes."""
        end = done + count
        if self.align == 1 or end >= self.total:
            return count
        into = end % self.per_epoch
        return count + min((-into) % self.align, self.per_epoch - into)

    def _steps(self, done: int, count: int) -> np.ndarray:
        """Run steps done .. done + count - 1; their batch losses."""
        net, optimizer = self.net, self.optimizer
        rates = optimizer.learning_rates(self.first_iteration + done, count)
        first_step = self.initial_epoch * self.per_epoch + done
        if self.plan is not None:
            begin_native_run(net._blas_threads_for(self.batch_size))
            try:
                losses = self.plan.train(self.x_flat, self.y, self.order, self.batch_size,
                                         first_step, rates, self.state, self.weights)
            finally:
                end_native_run()
        else:
            losses = net._train_python(self.x, self.y, self.order, self.batch_size,
                                       first_step, rates, optimizer, self.state,
                                       self.weights)
        return losses

    def _account(self, done: int, losses: np.ndarray) -> None:
        """Add a chunk's losses to its epochs; per-batch metrics, callbacks
        and progress; raise on a NaN or inf loss."""
        per_epoch, count = self.per_epoch, len(losses)
        k, e = done % per_epoch, done // per_epoch
        if count == 1:
            self.loss_sums[e] += losses[0] * self.sizes[k]
        else:
            steps = np.arange(done, done + count)
            np.add.at(self.loss_sums, steps // per_epoch,
                      losses * self.sizes[steps % per_epoch])
        if self.per_batch:
            self._batch_end(k, e, losses[0])
        if not math.isfinite(losses.sum()) and not self.net.stopped_on_nan:
            bad = ~np.isfinite(losses)
            if bad.any():
                step = done + int(np.argmax(bad))
                raise FloatingPointError(
                    f"Network.fit: the loss became {losses[np.argmax(bad)]} at epoch "
                    f"{self.initial_epoch + step // per_epoch + 1}/{self.epochs}, batch "
                    f"{step % per_epoch + 1}/{per_epoch}; lower the learning rate, "
                    f"scale the inputs or clip gradients (clipnorm=...)")
        if self.progress is not None and self.progress.live and k + count < per_epoch:
            seen = float(self.sizes[:k + count].sum())
            self.progress.update(k + count, int(seen), self._logs(e, seen))

    def _batch_end(self, batch: int, e: int, loss: float) -> None:
        """After a one-step chunk: training metrics from the step's outputs,
        then the callbacks' on_batch_end."""
        size = int(self.sizes[batch])
        if self.metrics:
            if self.plan is not None:
                out, target = self.plan.last_batch(size)
            else:
                out, target = self.net._last_batch
            out, target = self.net._shaped(out, target)
            for j, metric in enumerate(self.metrics):
                self.metric_sums[e, j] += metric(target, out) * size
        logs = {"loss": float(loss), "size": size}
        for callback in self.callbacks:
            callback.on_batch_end(batch, logs)

    def _logs(self, e: int, samples: float) -> dict:
        logs = {"loss": float(self.loss_sums[e] / samples)}
        for metric, total in zip(self.metrics, self.metric_sums[e]):
            logs[metric.name] = float(total / samples)
        return logs

    def _begin_epoch(self, epoch: int) -> None:
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch)
        if self.progress is not None:
            self.progress.epoch_begin(epoch)

    def _end_epoch(self, e: int) -> None:
        epoch = self.initial_epoch + e
        logs = self.logs = self._logs(e, self.n)
        if self.progress is not None:
            self.progress.training_done()
        if self.validation is not None:
            scores = self.net.evaluate(*self.validation)
            logs.update({"val_" + key: value for key, value in scores.items()})
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)
        self.history.on_epoch_end(epoch, logs)
        if self.verbose and self.article:
            print("epoch %d/%d   error=%f" % (epoch + 1, self.epochs, logs["loss"]))
        elif self.progress is not None:
            self.progress.epoch_end(epoch, self.n, logs)

    def _record_epochs(self, finished: range) -> None:
        """Without epoch hooks: record the epochs a chunk finished in bulk."""
        values = (self.loss_sums[finished.start:finished.stop] / self.n).tolist()
        self.history.history.setdefault("loss", []).extend(values)
        self.history.epoch.extend(range(self.initial_epoch + finished.start,
                                        self.initial_epoch + finished.stop))
        self.logs = {"loss": values[-1]}
        if self.verbose:
            print("\n".join("epoch %d/%d   error=%f" % (self.initial_epoch + e + 1,
                                                         self.epochs, v)
                            for e, v in zip(finished, values)))


def _validation(net, x, y, validation_data, validation_split):
    """(x_val, y_val) validated, or None."""
    if validation_data is not None:
        if validation_split:
            raise ValueError("fit: give validation_data or validation_split, not both")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
        vx = net._inputs(validation_data[0], "validation x")
        return vx, net._targets(validation_data[1], vx.shape[0])
    if not validation_split:
        return None
    split = float(validation_split)
    if not 0 < split < 1:
        raise ValueError(f"fit: validation_split must be in (0, 1), got {validation_split!r}")
    held = int(x.shape[0] * split)
    if held == 0 or held == x.shape[0]:
        raise ValueError(f"fit: validation_split={split} of {x.shape[0]} samples leaves "
                         f"no training or no validation samples")
    return split_tail(x, y, held)
