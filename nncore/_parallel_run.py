"""What every data-parallel fit does around its steps (`nncore.dask.fit`,
`nncore.mpi.fit`): the epochs, the shuffle, the callbacks, the checkpoint
and the accounting of each step's loss, as `Network.fit` does them.  A
subclass runs the steps of an epoch (`epoch`) and cleans up (`finish`)."""
from __future__ import annotations

import math

import numpy as np

from ._data import network_inputs, network_targets
from ._native.data import shuffle as shuffle_order
from ._training import Trainer, fit_optimizer, shuffle_state


class NoRows:
    """What a `Trainer` reads of its data when the rows are elsewhere."""

    single = True

    def __init__(self, validation) -> None:
        self.validation = validation


def new_trainer(network, config, n: int) -> Trainer:
    """The `Trainer` of a data-parallel fit of `n` rows with this FitConfig:
    the network's optimizer and shuffle generator, validation data checked."""
    validation = None
    if config.validation_data is not None:
        vx = network_inputs(network, config.validation_data[0], "validation x")
        validation = (vx, network_targets(network, config.validation_data[1], vx.shape[0]))
    trainer = Trainer(network, config, NoRows(validation))
    trainer.optimizer = fit_optimizer(network)
    trainer.state = shuffle_state(network) if config.shuffle else None
    trainer.samples[:] = n
    return trainer


def train(run: "DataParallelRun"):
    """Run a data-parallel fit (the network's guard held) as `Network.fit`
    runs: progress output, `network.history` and `network.trainer` set for
    its callbacks; returns the History."""
    net, trainer = run.net, run.trainer
    trainer.printer = trainer.style.printer(trainer.config.verbose, trainer.config.epochs,
                                            run.per_epoch if run.stepwise else None)
    net.history = trainer.history
    net.stop_training = False
    net.stopped_on_nan = False
    net.trainer = trainer
    try:
        run.run()
    finally:
        net.trainer = None
    return trainer.history


class DataParallelRun:
    """One data-parallel fit of `net` over `n` rows, the network's run guard
    held by the caller; `trainer` is a `Trainer` without data."""

    name = "data-parallel fit"     # how errors name the call
    stepwise = True                # the progress output counts steps

    def __init__(self, net, trainer, n: int, checkpoint) -> None:
        self.net, self.trainer, self.n = net, trainer, n
        self.checkpoint = checkpoint
        self.batch = trainer.batch_size(n)
        self.per_epoch = math.ceil(n / self.batch)

    def epoch(self, e: int, order: np.ndarray) -> None:
        """Run the steps of epoch e (0 for the call's first) over `order`."""
        raise NotImplementedError

    def finish(self) -> None:
        """Release what the run holds (called however it ends)."""

    def save_checkpoint(self) -> None:
        self.net.save(self.checkpoint)

    def run(self) -> None:
        trainer, net, config = self.trainer, self.net, self.trainer.config
        order = np.arange(self.n, dtype=np.int64)
        callbacks = trainer.callbacks
        for callback in callbacks:
            callback.set_network(net)
            callback.on_train_begin()
        try:
            for epoch in range(config.initial_epoch, config.epochs):
                e = epoch - config.initial_epoch
                trainer.begin_epoch(epoch)
                if trainer.state is not None:
                    shuffle_order(order, trainer.state)
                self.epoch(e, order)
                if net.stop_training and net.stopped_on_nan:
                    break
                trainer.end_epoch(e, self.per_epoch)
                if self.checkpoint is not None:
                    self.save_checkpoint()
                if net.stop_training:
                    break
            for callback in callbacks:
                callback.on_train_end(trainer.logs)
        finally:
            self.finish()

    def account(self, e: int, k: int, size: int, loss: float) -> bool:
        """Add a step's loss to its epoch; False (the step not applied) when
        the loss is not finite: TerminateOnNaN stops, else FloatingPointError."""
        trainer = self.trainer
        if math.isfinite(loss):
            trainer.loss_sums[e] += loss * size
            return True
        epoch = trainer.config.initial_epoch + e
        what = f"the loss became {loss} at epoch {epoch + 1}/{trainer.config.epochs}, " \
               f"batch {k + 1}"
        trainer.history.stopped = {"reason": what, "epoch": epoch, "batch": k,
                                   "restored": "the weights of the step before were kept"}
        for callback in trainer.callbacks:
            callback.on_batch_end(k, {"loss": float(loss), "size": size})
        if self.net.stopped_on_nan:
            self.net.stop_training = True
            return False
        raise FloatingPointError(f"{self.name}: {what}; the weights of the step before "
                                 f"were kept. Lower the learning rate or scale the inputs")

    def batch_end(self, e: int, k: int, size: int, loss: float) -> None:
        trainer = self.trainer
        for callback in trainer.callbacks:
            callback.on_batch_end(k, {"loss": float(loss), "size": size})
        printer = trainer.printer
        steps = self.per_epoch if self.stepwise else None
        if printer is not None and printer.live and steps and k + 1 < steps:
            seen = min((k + 1) * self.batch, self.n)
            printer.update(k + 1, seen, trainer.epoch_logs(e, seen))
