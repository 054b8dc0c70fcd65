"""Training a network: `fit` validates the call and runs a `Trainer` (the
optimizer and training plan set-up, native or Python steps in chunks, epoch
bookkeeping, validation, metrics, callbacks and progress output) under the
network's run guard; `evaluate` scores a network."""
from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np

from . import _checks, _weights
from . import callbacks as callbacks_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from ._data import check_positive_float, check_positive_int, network_inputs, network_targets
from ._native.data import new_shuffle_state, shuffle as shuffle_order
from ._native.optim import apply_update
from ._progress import Progress
from ._rollback import LastGood
from ._threads import begin_native_run, end_native_run
from ._undo import Snapshot
from .callbacks import History
from .losses import Loss
from .utils import split_tail


def fit(net, x, y, epochs: int = 1, batch_size: Optional[int] = None, validation_data=None,
        validation_split: float = 0.0, shuffle: bool = True, verbose: int = 1,
        callbacks: Optional[list] = None, initial_epoch: int = 0,
        learning_rate: Optional[float] = None, sample_weight=None,
        class_weight=None, wait: Optional[float] = None) -> History:
    """Network.fit (see there): claim the network, validate the arguments,
    then run a Trainer."""
    net.guard.begin_fit(wait=wait)
    try:
        undo = Snapshot(net)
        try:
            return _fit(net, x, y, epochs, batch_size, validation_data, validation_split,
                        shuffle, verbose, callbacks, initial_epoch, learning_rate,
                        sample_weight, class_weight)
        except BaseException:
            if net.history is undo.fields["history"]:   # before Trainer.run began
                undo.restore()
            raise
    finally:
        net.guard.end_fit()


def check_fit_arguments(net, epochs, initial_epoch, verbose, learning_rate, callbacks):
    """(epochs, learning_rate, callbacks) of a fit call, checked; shared by
    in-memory and streamed fits."""
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
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, callbacks_module.Callback):
            raise TypeError(f"callbacks must be nncore.callbacks.Callback objects, "
                            f"got {type(callback).__name__}")
    return epochs, learning_rate, callbacks


def _fit(net, x, y, epochs, batch_size, validation_data, validation_split, shuffle, verbose,
         callbacks, initial_epoch, learning_rate, sample_weight, class_weight) -> History:
    epochs, learning_rate, callbacks = check_fit_arguments(net, epochs, initial_epoch, verbose,
                                                           learning_rate, callbacks)
    article = _checks.is_article_style(net)
    batch_size = check_positive_int(batch_size if batch_size is not None
                                    else 1 if article else 32, "batch_size")
    if y is None:
        raise ValueError("Network.fit: y is missing; pass the targets, or x as a dask array "
                         "or as batches of (x, y)")
    x = network_inputs(net, x)
    y = network_targets(net, y, x.shape[0])
    weights = _weights.combined(net, y, sample_weight, class_weight, nonzero=True)
    validation = _validation(net, x, y, validation_data, validation_split)
    if validation is not None and validation_data is None:
        x, y = x[:-len(validation[0])], y[:-len(validation[0])]
        if weights is not None:
            weights = weights[:len(x)]
    batch_size = min(batch_size, x.shape[0])   # buffers for the samples there are
    optimizer = fit_optimizer(net)
    _checks.check_loss_and_outputs(net, x[:batch_size])
    trainer = Trainer(net, x, y, optimizer, epochs, initial_epoch, batch_size, shuffle,
                      validation, callbacks, verbose, article, weights)
    if learning_rate is None:
        return trainer.run()
    # learning_rate applies to this call only: the optimizer keeps its own
    own_rate, optimizer.learning_rate = optimizer.learning_rate, learning_rate
    try:
        return trainer.run()
    finally:
        optimizer.learning_rate = own_rate


def evaluate(net, x, y, batch_size: Optional[int] = None, sample_weight=None) -> dict:
    """Network.evaluate (see there)."""
    if net.loss is None:
        raise RuntimeError("Network.evaluate: set a loss with use(...) first")
    if y is None:
        raise ValueError("Network.evaluate: y is missing; pass the targets, or x as a dask "
                         "array or as batches of (x, y)")
    x = network_inputs(net, x)
    y = network_targets(net, y, x.shape[0])
    predicted = net.predict(x, batch_size)
    if not net.guard.fitting_here():         # fit checks its own first batch
        _checks.check_loss_and_outputs(net, out=predicted)
    out, target = shaped(net, predicted, y)
    weights = _weights.combined(net, y, sample_weight, None)
    scores = {"loss": float(net.loss(target, out) if weights is None
                            else net.loss(target, out, sample_weight=weights))
              + net.regularization_loss()}
    for metric in resolved_metrics(net):
        scores[metric.name] = float(metric(target, out))
    return scores


def fit_optimizer(net):
    """The optimizer fit uses: `use`'s, else a plain SGD kept by the network;
    built for the network's parameters on first use."""
    optimizer = net.optimizer
    if optimizer is None:
        if net.default_optimizer is None:
            net.default_optimizer = optimizers_module.SGD()
        optimizer = net.default_optimizer
    if not optimizer.built_for(net.params):
        optimizer.build(net.params, net.dtype)
    net.training_optimizer = optimizer
    return optimizer


def shuffle_state(net) -> np.ndarray:
    """The state of the generator that shuffles the samples of each epoch
    (drawn once from the network's seed, kept across fit calls and saved
    with the model, so that fit(2 epochs) twice equals fit(4 epochs))."""
    if net.shuffle_state is None:
        net.shuffle_state = new_shuffle_state(int(net.rng.integers(2**63)))
    return net.shuffle_state


def native_loss(net):
    """The native op of the network's loss, or None for a Python loss."""
    if not isinstance(net.loss, Loss):
        return None
    out_shape = net.output_shape
    size = int(np.prod(out_shape, dtype=np.int64))
    return net.loss.native(net.dtype, size, out_shape[-1] if out_shape else 1)


def resolved_metrics(net) -> list:
    sparse = getattr(net.loss, "sparse", False)
    return [metrics_module.get(m, net.loss, sparse, net.output_shape[-1])
            for m in net.metrics]


def shaped(net, out, target):
    """Network outputs and targets (flattened per sample) in the shapes
    metrics and losses expect."""
    n = out.shape[0]
    out = out.reshape((n,) + net.output_shape)
    if getattr(net.loss, "sparse", False):
        return out, target.reshape((n,) + net.output_shape[:-1])
    return out, target.reshape((n,) + net.output_shape)


class Trainer:
    """One `fit` call.  Steps are numbered from 0 over the epochs to run;
    they run natively in chunks that grow to ~20 ms, so that small networks
    pay almost no Python overhead while large ones still report."""

    CHUNK_SECONDS = 0.02

    def __init__(self, net, x, y, optimizer, epochs, initial_epoch, batch_size, shuffle,
                 validation, callbacks, verbose, article, weights=None):
        self.net, self.x, self.y, self.optimizer = net, x, y, optimizer
        self.weights = weights          # per-sample loss weights (n,) or None
        self.epochs, self.initial_epoch, self.batch_size = epochs, initial_epoch, batch_size
        self.validation, self.callbacks = validation, callbacks
        self.verbose, self.article = verbose, article
        self.metrics = resolved_metrics(net)
        n = self.n = x.shape[0]
        self.per_epoch = math.ceil(n / batch_size)
        self.sizes = np.full(self.per_epoch, batch_size, np.float64)
        self.sizes[-1] = n - batch_size * (self.per_epoch - 1)
        self.x_flat = x.reshape(n, -1)
        self.order = np.arange(n, dtype=np.int64)
        self.state = shuffle_state(net) if shuffle else None
        self.plan = net.plans.training_plan(net, native_loss(net), optimizer.updater)
        self.last_batch: tuple = ()       # (outputs, targets) of the last Python step
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
        self.last_good = LastGood(net, optimizer)

    def run(self) -> History:
        net = self.net
        net.history = self.history
        net.stop_training = False
        net.stopped_on_nan = False
        for callback in self.callbacks:
            callback.set_network(net)
            callback.on_train_begin()
        self.logs: dict = {}
        done, chunk = self._resumed(), self.align
        self.last_good.take(done, force=True)
        while done < self.total and not net.stop_training:
            k = done % self.per_epoch
            if k == 0:
                self._begin_epoch(self.initial_epoch + done // self.per_epoch)
            count = 1 if self.per_batch else min(chunk, self.total - done)
            if self.by_epoch:
                count = min(count, self.per_epoch - k)
            count = self._aligned(done, count)
            self.last_good.take(done)
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
        if not net.stop_training and not self.last_good.finite():
            self._diverged(done, None)
        for callback in self.callbacks:
            callback.on_train_end(self.logs)
        return self.history

    def _resumed(self) -> int:
        """The steps an interrupted run already took, when a callback
        (BackupAndRestore) restored its state: training continues after the
        epochs it completed."""
        completed = max([getattr(c, "resumed_epochs", 0) for c in self.callbacks], default=0)
        epochs = min(max(completed - self.initial_epoch, 0), self.epochs - self.initial_epoch)
        done = epochs * self.per_epoch
        self.first_iteration = self.optimizer.iterations - done
        return done

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
            begin_native_run(net.plans.blas_threads(net, self.batch_size))
            try:
                losses = self.plan.train(self.x_flat, self.y, self.order, self.batch_size,
                                         first_step, rates, self.state, self.weights)
            finally:
                end_native_run()
        else:
            losses = self._python_steps(first_step, rates)
        return losses

    def _python_steps(self, first_step: int, rates: np.ndarray) -> np.ndarray:
        """The per-layer Python loop, for networks with Python layers or
        losses: the same steps as `Plan.train`."""
        net, loss, batch_size = self.net, self.net.loss, self.batch_size
        losses = np.empty(len(rates))
        params, grads, penalties = net.params, net.grads, net.penalties
        target_shape = None if getattr(loss, "sparse", False) else net.output_shape
        for s, rate in enumerate(rates):
            k = (first_step + s) % self.per_epoch
            if k == 0 and self.state is not None:
                shuffle_order(self.order, self.state)
            index = self.order[k * batch_size:(k + 1) * batch_size]
            out = self.x[index]
            target = self.y[index]
            if target_shape is not None:
                target = target.reshape((len(index),) + target_shape)
            for layer in net.layers:
                out = layer.forward(out, training=True)
            weights = None if self.weights is None else self.weights[index]
            if weights is None:
                losses[s] = loss(target, out)
                grad = loss.gradient(target, out)
            else:
                losses[s] = loss(target, out, sample_weight=weights)
                grad = loss.gradient(target, out, sample_weight=weights)
            self.last_batch = (np.reshape(out, (len(index), -1)),
                               np.reshape(target, (len(index), -1)))
            for layer in reversed(net.layers):
                grad = layer.backward(grad)
            for penalty in penalties:
                losses[s] += penalty.apply()
            apply_update(self.optimizer.updater, params, grads, float(rate))
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
        if not math.isfinite(losses.sum()):
            bad = ~np.isfinite(losses)
            if bad.any():
                self._diverged(done + int(np.argmax(bad)), float(losses[np.argmax(bad)]))
                return
        if self.progress is not None and self.progress.live and k + count < per_epoch:
            seen = float(self.sizes[:k + count].sum())
            self.progress.update(k + count, int(seen), self._logs(e, seen))

    def _step_name(self, step: int) -> str:
        return (f"epoch {self.initial_epoch + step // self.per_epoch + 1}/{self.epochs}, "
                f"batch {step % self.per_epoch + 1}/{self.per_epoch}")

    def _diverged(self, step: int, loss: Optional[float]) -> None:
        """The loss of `step` (or, loss None, the weights after the steps
        before it) is not finite: put back the last good weights and
        optimizer state, record the stop, then stop (TerminateOnNaN) or raise
        FloatingPointError."""
        restored = self.last_good.restore(step)
        what = (f"the loss became {loss} at {self._step_name(step)}" if loss is not None
                else f"the weights became NaN or inf in the steps before "
                     f"{self._step_name(step)}")
        if restored is None:
            kept = "the weights could not be restored"
        elif restored == 0:
            kept = "the weights and optimizer state from before this fit were restored"
        else:
            kept = (f"the weights and optimizer state from before "
                    f"{self._step_name(restored)} (the last finite step checked) were restored")
        self.history.stopped = {"reason": what, "restored": kept,
                                "epoch": self.initial_epoch + step // self.per_epoch,
                                "batch": step % self.per_epoch}
        if self.net.stopped_on_nan:
            self.net.stop_training = True
            if self.verbose:
                print(f"\nTerminateOnNaN: {what}; training stopped and {kept}")
            return
        raise FloatingPointError(f"Network.fit: {what}; {kept}. Lower the learning rate, "
                                 f"scale the inputs or clip gradients (clipnorm=...)")

    def _batch_end(self, batch: int, e: int, loss: float) -> None:
        """After a one-step chunk: training metrics from the step's outputs,
        then the callbacks' on_batch_end."""
        size = int(self.sizes[batch])
        if self.metrics:
            if self.plan is not None:
                out, target = self.plan.last_batch(size)
            else:
                out, target = self.last_batch
            out, target = shaped(self.net, out, target)
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
            others = "".join(f"   {key}={value:f}" for key, value in logs.items()
                             if key not in ("loss", "learning_rate"))
            print("epoch %d/%d   error=%f%s" % (epoch + 1, self.epochs, logs["loss"], others))
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
