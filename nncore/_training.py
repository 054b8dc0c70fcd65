"""Training a network: one `Trainer` runs a fit over the blocks a data
adapter gives (`_adapters`): the optimizer and training plan, native or
Python steps in chunks, epoch bookkeeping, validation, metrics, callbacks
and the printer of the training style (`article`); `evaluate` scores a
network."""
from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np

from . import _adapters, _checks, _weights
from . import callbacks as callbacks_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from ._data import network_inputs, network_targets
from ._native.data import new_shuffle_state, shuffle as shuffle_order
from ._native.optim import apply_update
from ._masking import refuse_python_training
from ._rollback import LastGood
from ._threads import begin_native_run, end_native_run
from .article import training_style
from .callbacks import History
from .losses import Loss


class Trainer:
    """One `fit` call (the network's run guard held by the caller).

    Every epoch trains on the blocks of the data adapter: in-memory arrays
    are one block that all epochs share, so that steps run natively in
    chunks that may span epochs and grow to ~20 ms (small networks pay almost
    no Python overhead while large ones still report); a stream gives its
    blocks again each epoch.  The learning rate of the run is fit's
    `learning_rate`, or the optimizer's own; callbacks read and set it as
    `network.trainer.learning_rate`."""

    CHUNK_SECONDS = 0.02

    def __init__(self, net, config, data):
        self.net, self.config, self.data = net, config, data
        self.style = training_style(net)
        self.callbacks = list(config.callbacks)
        self.validation = data.validation
        self.history = callbacks_module.History()
        self.rate = config.learning_rate      # None: the optimizer's own
        self.optimizer: Optional[optimizers_module.Optimizer] = None
        self.state = None                     # the shuffle generator (see shuffle_state)
        self.metrics: list = []
        self.checked = False                  # the loss suits the outputs (first block)
        run_epochs = config.epochs - config.initial_epoch
        self.loss_sums = np.zeros(run_epochs)
        self.metric_sums = np.zeros((run_epochs, len(net.metrics)))
        self.samples = np.zeros(run_epochs)   # samples trained on in each epoch
        self.batches = 0                      # steps run in the current epoch (streams)
        self.logs: dict = {}
        # training metrics and batch callbacks need one native step per call;
        # epoch hooks (callbacks, validation, progress) end chunks at epochs
        self.per_batch = bool(net.metrics) or any(
            callbacks_module.wants_batches(c) for c in self.callbacks)
        self.printer = None

    # ----------------------------------------------------------- the rate
    @property
    def learning_rate(self):
        """The rate (or schedule) of this run's steps.  Setting it changes
        fit's `learning_rate` when the call gave one, else the optimizer's
        own (which then keeps it)."""
        return self.optimizer.learning_rate if self.rate is None else self.rate

    @learning_rate.setter
    def learning_rate(self, rate) -> None:
        if self.rate is None:
            self.optimizer.learning_rate = rate
        else:
            self.rate = rate

    def learning_rate_at(self, step: int) -> float:
        rate = self.learning_rate
        return float(rate(step)) if callable(rate) else rate

    # ---------------------------------------------------------------- run
    def run(self, undo=None) -> History:
        """Train; a set-up that raises (building, the optimizer, the plan,
        the first check of the loss) first restores the `undo` snapshot."""
        net, data = self.net, self.data
        try:
            data.prepare(net)
            if net.built:
                self._start()
            block = (BlockRun(self, *data.block, passes=self.config.epochs
                              - self.config.initial_epoch) if data.single else None)
        except BaseException:
            if undo is not None:
                undo.restore()
            raise
        net.history = self.history
        net.stop_training = False
        net.stopped_on_nan = False
        net.trainer = self
        try:
            for callback in self.callbacks:
                callback.set_network(net)
                callback.on_train_begin()
            if block is not None:
                block.run()
            else:
                self._run_stream()
            for callback in self.callbacks:
                callback.on_train_end(self.logs)
        finally:
            net.trainer = None
        return self.history

    def _start(self) -> None:
        """Once the network is built: the optimizer, the shuffle generator,
        the metrics and the printer."""
        net, config = self.net, self.config
        self.optimizer = fit_optimizer(net)
        self.state = shuffle_state(net) if config.shuffle else None
        self.metrics = resolved_metrics(net)
        steps = None
        if self.data.single:
            n = len(self.data.block[0])
            steps = math.ceil(n / self.batch_size(n))
        self.printer = self.style.printer(config.verbose, config.epochs, steps)

    def batch_size(self, n: int) -> int:
        """Samples per step in a block of n samples."""
        size = self.config.batch_size or self.data.default_batch_size(self.style) or n
        return min(size, n)         # buffers for the samples there are

    def _run_stream(self) -> None:
        """Epochs over a stream: its blocks, one pass each."""
        net, config = self.net, self.config
        for epoch in range(config.initial_epoch, config.epochs):
            self.begin_epoch(epoch)
            self.batches = 0
            e = epoch - config.initial_epoch
            for block, (x, y, weights) in enumerate(self.data.epoch(net, self.state)):
                if self.optimizer is None:      # an iterable: built from its first batch
                    self._start()
                    if self.printer is not None:
                        self.printer.epoch_begin(epoch)
                try:
                    BlockRun(self, x, y, weights, passes=1, epoch=e).run()
                except FloatingPointError as error:
                    raise FloatingPointError(f"{error} (in block {block + 1})") from None
                if net.stop_training:
                    break
            if not self.samples[e]:
                break
            self.end_epoch(e)
            if net.stop_training:
                break

    # -------------------------------------------------------- epoch hooks
    def begin_epoch(self, epoch: int) -> None:
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch)
        if self.printer is not None:
            self.printer.epoch_begin(epoch)

    def end_epoch(self, e: int, steps: Optional[int] = None) -> None:
        epoch = self.config.initial_epoch + e
        samples = float(self.samples[e])
        logs = self.logs = self.epoch_logs(e, samples)
        if self.printer is not None:
            self.printer.training_done()
        if self.validation is not None:
            scores = self.net.evaluate(*self.validation)
            logs.update({"val_" + key: value for key, value in scores.items()})
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)
        self.history.on_epoch_end(epoch, logs)
        if self.printer is not None:
            self.printer.epoch_end(epoch, int(samples), logs, steps or self.batches)

    def record_epochs(self, finished: range) -> None:
        """Without epoch hooks: record the epochs a chunk finished in bulk."""
        values = (self.loss_sums[finished.start:finished.stop]
                  / self.samples[finished.start:finished.stop]).tolist()
        self.history.history.setdefault("loss", []).extend(values)
        first = self.config.initial_epoch + finished.start
        self.history.epoch.extend(range(first, first + len(finished)))
        self.logs = {"loss": values[-1]}
        if self.printer is not None:
            for epoch, value in enumerate(values, first):
                self.printer.epoch_end(epoch, 0, {"loss": value}, 0)

    def epoch_logs(self, e: int, samples: float) -> dict:
        logs = {"loss": float(self.loss_sums[e] / samples)}
        for metric, total in zip(self.metrics, self.metric_sums[e]):
            logs[metric.name] = float(total / samples)
        return logs

    @property
    def by_epoch(self) -> bool:
        """Chunks end at epochs: something runs between them."""
        return (self.per_batch or bool(self.callbacks) or self.validation is not None
                or (self.printer is not None and self.printer.needs_epochs))


class BlockRun:
    """`passes` epochs over one block of samples x, y (per-sample loss
    weights or None): steps of the trainer's batch size, native or Python,
    in chunks; what they report goes to the trainer.  `epoch` is the index
    (from the fit's initial epoch) of the first pass."""

    def __init__(self, trainer: Trainer, x, y, weights, passes: int, epoch: int = 0):
        net = trainer.net
        self.trainer, self.net, self.x, self.y, self.weights = trainer, net, x, y, weights
        self.first_epoch = epoch
        self.first_batch = trainer.batches     # batches of the epoch before this block
        n = self.n = x.shape[0]
        batch_size = self.batch_size = trainer.batch_size(n)
        if not trainer.checked:
            _checks.check_loss_and_outputs(net, x[:batch_size])
            trainer.checked = True
        self.per_epoch = math.ceil(n / batch_size)
        self.sizes = np.full(self.per_epoch, batch_size, np.float64)
        self.sizes[-1] = n - batch_size * (self.per_epoch - 1)
        self.x_flat = x.reshape(n, -1)
        self.order = np.arange(n, dtype=np.int64)
        self.plan = net.plans.training_plan(net, native_loss(net), trainer.optimizer.updater)
        if self.plan is None:
            refuse_python_training(net, "Network.fit")
        self.last_batch: tuple = ()       # (outputs, targets) of the last Python step
        self.total = passes * self.per_epoch
        if trainer.data.single:             # every epoch trains on all n samples
            trainer.samples[:] = n
        self.first_iteration = trainer.optimizer.iterations
        # chunks end at multiples of this many steps into an epoch (see _aligned)
        self.align = (self.plan.step_alignment(batch_size)
                      if self.plan is not None and not trainer.per_batch else 1)
        self.last_good = LastGood(net, trainer.optimizer)

    def run(self) -> None:
        trainer, net, per_epoch = self.trainer, self.net, self.per_epoch
        single = trainer.data.single
        by_epoch = trainer.by_epoch
        done, chunk = (self._resumed() if single else 0), self.align
        self.last_good.take(done, force=True)
        while done < self.total and not net.stop_training:
            k = done % per_epoch
            if k == 0 and single:
                trainer.begin_epoch(trainer.config.initial_epoch + done // per_epoch)
            count = 1 if trainer.per_batch else min(chunk, self.total - done)
            if by_epoch:
                count = min(count, per_epoch - k)
            count = self._aligned(done, count)
            self.last_good.take(done)
            began = time.perf_counter()
            losses = self._steps(done, count)
            if time.perf_counter() - began < trainer.CHUNK_SECONDS:
                chunk *= 2
            self._account(done, losses)
            if net.stop_training:
                break
            finished = range(self.first_epoch + done // per_epoch,
                             self.first_epoch + (done + count) // per_epoch)
            done += count
            if not single:
                trainer.batches += count
                continue
            if by_epoch:
                for e in finished:
                    trainer.end_epoch(e, per_epoch)
            elif finished:
                trainer.record_epochs(finished)
        if not net.stop_training and not self.last_good.finite():
            self._diverged(done, None)

    def _resumed(self) -> int:
        """The steps an interrupted run already took, when a callback
        (BackupAndRestore) restored its state: training continues after the
        epochs it completed."""
        config = self.trainer.config
        completed = max([getattr(c, "resumed_epochs", 0) for c in self.trainer.callbacks],
                        default=0)
        epochs = min(max(completed - config.initial_epoch, 0),
                     config.epochs - config.initial_epoch)
        done = epochs * self.per_epoch
        self.first_iteration = self.trainer.optimizer.iterations - done
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
        trainer, net = self.trainer, self.net
        rates = trainer.optimizer.learning_rates(self.first_iteration + done, count,
                                                 trainer.rate)
        first_step = trainer.config.initial_epoch * self.per_epoch + done
        if self.plan is None:
            return self._python_steps(first_step, rates)
        state = trainer.state
        begin_native_run(net.plans.training_threads(net, self.plan, self.batch_size))
        try:
            return self.plan.train(self.x_flat, self.y, self.order, self.batch_size,
                                   first_step, rates, state, self.weights)
        finally:
            end_native_run()

    def _python_steps(self, first_step: int, rates: np.ndarray) -> np.ndarray:
        """The per-layer Python loop, for networks with Python layers or
        losses: the same steps as `Plan.train`."""
        net, loss, batch_size = self.net, self.net.loss, self.batch_size
        state = self.trainer.state
        losses = np.empty(len(rates))
        params, grads, penalties = net.params, net.grads, net.penalties
        target_shape = None if getattr(loss, "sparse", False) else net.output_shape
        for s, rate in enumerate(rates):
            k = (first_step + s) % self.per_epoch
            if k == 0 and state is not None:
                shuffle_order(self.order, state)
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
            apply_update(self.trainer.optimizer.updater, params, grads, float(rate))
        return losses

    def _account(self, done: int, losses: np.ndarray) -> None:
        """Add a chunk's losses to its epochs; per-batch metrics, callbacks
        and progress; raise on a NaN or inf loss."""
        trainer, per_epoch, count = self.trainer, self.per_epoch, len(losses)
        k, e = done % per_epoch, self.first_epoch + done // per_epoch
        if count == 1:
            trainer.loss_sums[e] += losses[0] * self.sizes[k]
        else:
            steps = np.arange(done, done + count)
            np.add.at(trainer.loss_sums, self.first_epoch + steps // per_epoch,
                      losses * self.sizes[steps % per_epoch])
        if not trainer.data.single:         # a stream's epoch: the samples of its blocks
            trainer.samples[e] += self.sizes[k:k + count].sum()
        if trainer.per_batch:
            self._batch_end(k, self.first_batch + k, e, losses[0])
        if not math.isfinite(losses.sum()):
            bad = ~np.isfinite(losses)
            if bad.any():
                self._diverged(done + int(np.argmax(bad)), float(losses[np.argmax(bad)]))
                return
        printer = trainer.printer
        if printer is not None and printer.live and k + count < per_epoch:
            seen = float(self.sizes[:k + count].sum())
            printer.update(k + count, int(seen), trainer.epoch_logs(e, seen))

    def _step_name(self, step: int) -> str:
        config = self.trainer.config
        return (f"epoch {config.initial_epoch + self.first_epoch + step // self.per_epoch + 1}"
                f"/{config.epochs}, batch {step % self.per_epoch + 1}/{self.per_epoch}")

    def _diverged(self, step: int, loss: Optional[float]) -> None:
        """The loss of `step` (or, loss None, the weights after the steps
        before it) is not finite: put back the last good weights and
        optimizer state, record the stop, then stop (TerminateOnNaN) or raise
        FloatingPointError."""
        trainer = self.trainer
        restored = self.last_good.restore(step)
        what = (f"the loss became {loss} at {self._step_name(step)}" if loss is not None
                else f"the weights became NaN or inf in the steps before "
                     f"{self._step_name(step)}")
        if restored is None:
            kept = "the weights could not be restored"
        elif restored == 0:
            kept = ("the weights and optimizer state from before this fit were restored"
                    if trainer.data.single else "the weights and optimizer state from "
                    "before this block were restored")
        else:
            kept = (f"the weights and optimizer state from before "
                    f"{self._step_name(restored)} (the last finite step checked) were restored")
        trainer.history.stopped = {
            "reason": what, "restored": kept,
            "epoch": trainer.config.initial_epoch + self.first_epoch + step // self.per_epoch,
            "batch": self.first_batch + step % self.per_epoch}
        if self.net.stopped_on_nan:
            self.net.stop_training = True
            if trainer.config.verbose:
                print(f"\nTerminateOnNaN: {what}; training stopped and {kept}")
            return
        raise FloatingPointError(f"Network.fit: {what}; {kept}. Lower the learning rate, "
                                 f"scale the inputs or clip gradients (clipnorm=...)")

    def _batch_end(self, k: int, batch: int, e: int, loss: float) -> None:
        """After a one-step chunk (step k of this block, batch `batch` of
        the epoch): training metrics from the step's outputs, then the
        callbacks' on_batch_end."""
        trainer = self.trainer
        size = int(self.sizes[k])
        if trainer.metrics:
            if self.plan is not None:
                out, target = self.plan.last_batch(size)
            else:
                out, target = self.last_batch
            out, target = shaped(self.net, out, target)
            for j, metric in enumerate(trainer.metrics):
                trainer.metric_sums[e, j] += metric(target, out) * size
        logs = {"loss": float(loss), "size": size}
        for callback in trainer.callbacks:
            callback.on_batch_end(batch, logs)


# ------------------------------------------------------------- helpers
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


# ------------------------------------------------------------ evaluate
def evaluate(net, x, y, batch_size: Optional[int] = None, sample_weight=None) -> dict:
    """Network.evaluate (see there): arrays in one piece, a stream block by
    block (sums over the blocks divided by the number of samples)."""
    if net.loss is None:
        raise RuntimeError("Network.evaluate: set a loss with use(...) first")
    if _adapters.is_stream(x):
        return _evaluate_stream(net, x, y, batch_size, sample_weight)
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


def _evaluate_stream(net, x, y, batch_size, sample_weight) -> dict:
    samples, loss_sum = 0, 0.0
    metrics = None
    sums: np.ndarray = np.zeros(0)
    for xb, yb, wb in _adapters.Blocks(x, y, sample_weight).batches():
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
