"""Callbacks: hooks that `Network.fit` calls during training.

Epochs are numbered from 0 in the hooks (as in Keras); `logs` is a dict of
the current values (`loss`, metrics, `val_*`).  A callback that overrides
`on_batch_end` makes `fit` run one native step per call instead of long
native chunks, so only use it when needed.  Set `network.stop_training =
True` from a hook to end training after the current epoch (or batch).
"""
from __future__ import annotations

import csv
import math
import os
from typing import Callable, Optional

import numpy as np

from ._checks import check_save_path


class Callback:
    """Base class; every hook does nothing.  `self.network` is the network
    being trained (also available as `self.model`).

    Override any of on_train_begin / on_train_end, on_epoch_begin /
    on_epoch_end (epoch, logs) and on_batch_begin / on_batch_end (batch,
    logs); set ``self.network.stop_training = True`` to end the fit after
    the current epoch.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(-1, 1)
    >>> net = nncore.Network([nncore.Dense(1)], seed=0)
    >>> net.use("mse", optimizer=nncore.optimizers.SGD(0.1))
    Network(...)
    >>> class Print(nncore.callbacks.Callback):
    ...     def on_epoch_end(self, epoch, logs=None):
    ...         print(epoch, sorted(logs))
    >>> _ = net.fit(x, 3 * x, epochs=2, verbose=0, callbacks=[Print()])
    0 ['loss']
    1 ['loss']
    """

    network = None

    def set_network(self, network) -> None:
        self.network = network

    @property
    def model(self):
        return self.network

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        pass

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        pass


class History(Callback):
    """What `fit` returns: `history` maps `loss`, each metric and `val_*` to
    its per-epoch values; `epoch` lists the epoch numbers (from 0).
    `stopped` is None, or, when a loss or weight became NaN or inf, a dict
    saying where (`epoch`, `batch`, from 0), what (`reason`) and which
    weights were put back (`restored`).

    Examples
    --------
    >>> import numpy as np, nncore
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(64, 3)).astype(np.float32)
    >>> y = x.sum(axis=1, keepdims=True)
    >>> net = nncore.Network([nncore.Dense(1)], seed=0)
    >>> net.use("mse", optimizer=nncore.optimizers.SGD(0.1))
    Network(...)
    >>> history = net.fit(x, y, epochs=5, batch_size=16, validation_split=0.25, verbose=0)
    >>> sorted(history.history), history.epoch
    (['loss', 'val_loss'], [0, 1, 2, 3, 4])
    >>> history.history["loss"][-1] < history.history["loss"][0]
    True
    >>> figure = history.plot()     # the training curves, with matplotlib
    """

    def __init__(self):
        self.history: dict = {}
        self.epoch: list = []
        self.stopped: Optional[dict] = None

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list:
        return self.history[key]

    def plot(self, path=None, keys=None):
        """Draw the training curves with matplotlib and return the Figure:
        the loss and each metric on axes of their own, each `val_` curve
        beside its training twin in the same colour (dashed), epochs
        (from 1) on integer ticks.  With `path`, the figure is also saved
        there (any format matplotlib writes, by extension) and closed in
        pyplot; otherwise show it with `matplotlib.pyplot.show()` (notebooks
        display the returned Figure).  `keys` picks quantities by name
        (default: all)."""
        try:
            import matplotlib.pyplot as plt
            from matplotlib.ticker import MaxNLocator
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install 'nncore[plot]' "
                              "(or pip install matplotlib)") from None
        if not self.history:
            raise ValueError("History.plot: nothing recorded yet; fit the network first")
        names = [key[4:] if key.startswith("val_") else key for key in self.history]
        names = list(dict.fromkeys(names if keys is None else keys))
        unknown = [n for n in names if n not in self.history and "val_" + n not in self.history]
        if unknown or not names:
            raise ValueError(f"History.plot: nothing recorded for {unknown}; "
                             f"recorded: {sorted(self.history)}")
        figure, axes = plt.subplots(len(names), 1, sharex=True, squeeze=False,
                                    figsize=(6.4, 1.0 + 2.2 * len(names)))
        epochs = [e + 1 for e in self.epoch]
        for index, (name, ax) in enumerate(zip(names, axes[:, 0])):
            colour = f"C{index % 10}"
            for key, style in ((name, "-"), ("val_" + name, "--")):
                if key in self.history:
                    ax.plot(epochs, self.history[key], style, color=colour, label=key,
                            marker="o" if len(epochs) == 1 else None)
            ax.set_ylabel(name)
            ax.legend()
            ax.grid(True, alpha=0.3)
        bottom = axes[-1, 0]
        bottom.set_xlabel("epoch")
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        figure.tight_layout()
        if path is not None:
            figure.savefig(path)
            plt.close(figure)
        return figure

    def __repr__(self) -> str:
        return f"History({len(self.epoch)} epochs: {sorted(self.history)})"


def wants_batches(callback: Callback) -> bool:
    """Whether the callback overrides on_batch_end (fit then reports every
    batch to it, which costs one native call per batch).

    Parameters
    ----------
    callback : Callback
        The callback to ask about.

    Returns
    -------
    bool

    Examples
    --------
    >>> import nncore
    >>> from nncore.callbacks import TerminateOnNaN, CSVLogger, wants_batches
    >>> wants_batches(TerminateOnNaN()), wants_batches(CSVLogger("log.csv"))
    (True, False)
    """
    return type(callback).on_batch_end is not Callback.on_batch_end


def _weights(network) -> list:
    return [p.copy() for p in network.params]


def _set_weights(network, weights: list) -> None:
    # copy in place: native ops and optimizer states hold these arrays' addresses
    for p, w in zip(network.params, weights):
        np.copyto(p, w)


class _Monitor:
    """Tracks the best value of a monitored quantity."""

    def __init__(self, owner: str, monitor: str, mode: str, min_delta: float = 0.0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
        self.owner = owner
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf

    def value(self, logs: Optional[dict]) -> float:
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(f"{self.owner}: monitored quantity {self.monitor!r} is not "
                           f"available; have {sorted(logs)} (val_* needs validation data)")
        return float(logs[self.monitor])

    def improved(self, current: float) -> bool:
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for
    `patience` epochs in a row (patience=0: at the first epoch without
    improvement).  With `restore_best_weights`, the weights of
    the best epoch are put back when training stops early.

    Parameters
    ----------
    monitor : str, default "val_loss"
        The quantity watched: "loss", a metric's name, or either prefixed
        with ``val_``.
    min_delta : float, default 0.0
        The least change that counts as an improvement.
    patience : int, default 0
        Epochs without improvement tolerated before stopping.
    mode : {"auto", "min", "max"}, default "auto"
        Whether smaller or larger is better ("auto": larger for accuracies).
    restore_best_weights : bool, default False
        Put back the weights of the best epoch when training stops.

    Raises
    ------
    ValueError
        If `patience` is negative or `mode` is unknown.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.zeros((32, 2), dtype=np.float32)
    >>> y = np.ones((32, 1), dtype=np.float32)
    >>> net = nncore.Network([nncore.Dense(1, use_bias=False)], seed=0)
    >>> net.use("mse", optimizer="sgd")
    Network(...)
    >>> stop = nncore.callbacks.EarlyStopping(monitor="loss", patience=2)
    >>> history = net.fit(x, y, epochs=50, verbose=0, callbacks=[stop])
    >>> len(history.epoch)       # zero inputs: the loss never improves
    3
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 mode: str = "auto", restore_best_weights: bool = False):
        if int(patience) < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience!r}")
        self.monitor = monitor
        self.min_delta = min_delta
        self.patience = int(patience)
        self.mode = mode
        self.restore_best_weights = bool(restore_best_weights)
        _Monitor("EarlyStopping", monitor, mode, min_delta)  # validates early

    def on_train_begin(self, logs=None):
        self._tracker = _Monitor("EarlyStopping", self.monitor, self.mode, self.min_delta)
        self.wait = 0
        self.stopped_epoch = None
        self.best_epoch = None
        self.best_weights = None

    @property
    def best(self) -> float:
        return self._tracker.best

    def on_epoch_end(self, epoch, logs=None):
        current = self._tracker.value(logs)
        if self._tracker.improved(current):
            self._tracker.best = current
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = _weights(self.network)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.network.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                _set_weights(self.network, self.best_weights)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate of the fit (`network.trainer.learning_rate`:
    fit's `learning_rate` when given, else the optimizer's) by `factor` once `monitor`
    has not improved by more than `min_delta` for `patience` epochs in a row
    (not below `min_lr`), then wait `cooldown` epochs before counting again.
    The rate is logged as `learning_rate`.  The rate must be constant (not a
    schedule).

    Parameters
    ----------
    monitor : str, default "val_loss"
        The quantity watched, as for `EarlyStopping`.
    factor : float, default 0.1
        What the rate is multiplied by, in (0, 1).
    patience : int, default 10
        Epochs without improvement before the rate drops.
    verbose : int, default 0
        1: print each drop.
    mode : {"auto", "min", "max"}, default "auto"
        Whether smaller or larger is better ("auto": larger for accuracies).
    min_delta : float, default 1e-4
        The least change that counts as an improvement.
    cooldown : int, default 0
        Epochs after a drop before counting again.
    min_lr : float, default 0.0
        The lowest rate.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Dense(1, use_bias=False)], seed=0)
    >>> net.use("mse", optimizer=nncore.optimizers.SGD(0.1))
    Network(...)
    >>> plateau = nncore.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0)
    >>> history = net.fit(np.zeros((32, 2)), np.ones((32, 1)), epochs=4, verbose=0,
    ...                   callbacks=[plateau])     # zero inputs: the loss never improves
    >>> history.history["learning_rate"]
    [0.1, 0.05, 0.025, 0.0125]
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0):
        name = "ReduceLROnPlateau"
        if not (isinstance(factor, (int, float)) and 0 < factor < 1):
            raise ValueError(f"{name}: factor must be in (0, 1), got {factor!r}")
        for key, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: {key} must be an integer >= 0, got {value!r}")
        if not (isinstance(min_lr, (int, float)) and math.isfinite(min_lr) and min_lr >= 0):
            raise ValueError(f"{name}: min_lr must be a number >= 0, got {min_lr!r}")
        self.monitor, self.factor, self.patience = monitor, float(factor), patience
        self.verbose, self.mode, self.min_delta = int(verbose), mode, min_delta
        self.cooldown, self.min_lr = cooldown, float(min_lr)
        _Monitor(name, monitor, mode, min_delta)  # validates early

    def on_train_begin(self, logs=None):
        self._tracker = _Monitor("ReduceLROnPlateau", self.monitor, self.mode, self.min_delta)
        self.wait = 0
        self.cooldown_counter = 0
        if callable(self.network.trainer.learning_rate):
            raise TypeError("ReduceLROnPlateau needs a constant learning rate, not a "
                            "schedule")

    def on_epoch_end(self, epoch, logs=None):
        run = self.network.trainer
        current = self._tracker.value(logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._tracker.improved(current):
            self._tracker.best = current
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and run.learning_rate > self.min_lr:
                rate = max(run.learning_rate * self.factor, self.min_lr)
                run.learning_rate = rate
                self.cooldown_counter = self.cooldown
                self.wait = 0
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reduced the learning rate "
                          f"to {rate:g}")
        if logs is not None:
            logs["learning_rate"] = run.learning_rate


class BackupAndRestore(Callback):
    """Make `fit` survive interruptions (Ctrl-C, kill -9, a crash, a
    preempted machine).  At the end of every epoch the network -- weights,
    layer state, optimizer state, random generator and shuffling state -- is
    written atomically to `backup_dir`; a `fit` that starts with a backup
    there (the same script run again) loads it and continues after the last
    completed epoch, so it ends bit-identical to a run that was never
    interrupted.  The backup is deleted when `fit` completes (unless
    `delete_checkpoint=False`).  The History of the resumed run holds the
    epochs it ran; other callbacks start afresh.

    Parameters
    ----------
    backup_dir : str or path-like
        The directory of the backup (created when missing).
    delete_checkpoint : bool, default True
        Delete the backup when fit completes.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(-1, 1)
    >>> net = nncore.Network([nncore.Dense(1)], seed=0)
    >>> net.use("mse", optimizer=nncore.optimizers.SGD(0.1))
    Network(...)
    >>> backup = nncore.callbacks.BackupAndRestore("backup", delete_checkpoint=False)
    >>> _ = net.fit(x, 3 * x, epochs=2, verbose=0, callbacks=[backup])
    >>> again = net.fit(x, 3 * x, epochs=3, verbose=0, callbacks=[backup])
    >>> again.epoch                   # resumed after the 2 completed epochs
    [2]
    """

    PREFIX, SUFFIX = "epoch-", ".nncore"

    def __init__(self, backup_dir, delete_checkpoint: bool = True):
        self.backup_dir = os.fspath(backup_dir)
        self.delete_checkpoint = bool(delete_checkpoint)
        #: epochs completed by the run that was restored (0: nothing restored)
        self.resumed_epochs = 0

    def _backups(self) -> list:
        """(epochs completed, path) of the backups in backup_dir, newest last."""
        found = []
        if os.path.isdir(self.backup_dir):
            for name in os.listdir(self.backup_dir):
                number = name[len(self.PREFIX):-len(self.SUFFIX)]
                if name.startswith(self.PREFIX) and name.endswith(self.SUFFIX) \
                        and number.isdigit():
                    found.append((int(number), os.path.join(self.backup_dir, name)))
        return sorted(found)

    def on_train_begin(self, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        self.resumed_epochs = 0
        backups = self._backups()
        if backups:
            self.resumed_epochs, path = backups[-1]
            _restore(self.network, path)

    def on_epoch_end(self, epoch, logs=None):
        path = os.path.join(self.backup_dir, f"{self.PREFIX}{epoch + 1}{self.SUFFIX}")
        self.network.save(path)          # atomic: a kill leaves the older backup whole
        for number, old in self._backups():
            if number != epoch + 1:
                os.remove(old)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            for _, path in self._backups():
                os.remove(path)


def _restore(network, path) -> None:
    """Put the weights, layer state, optimizer state and random states saved
    in `path` into `network` in place (native plans hold these arrays)."""
    from . import saving
    saved = saving.load(path, type(network))
    network.set_weights(saved.get_weights())
    optimizer = network.training_optimizer
    if saved.optimizer is not None and optimizer is not None:
        state = saved.optimizer.get_state()
        if state:
            optimizer.set_state(state)
    if saved.shuffle_state is not None:
        if network.shuffle_state is None:
            network.shuffle_state = saved.shuffle_state.copy()
        else:
            np.copyto(network.shuffle_state, saved.shuffle_state)
    network.rng.bit_generator.state = saved.rng.bit_generator.state


class TensorBoard(Callback):
    """Write TensorBoard event files to `log_dir` through tensorboardX
    (`pip install "nncore[tensorboard]"`; TensorFlow is not needed): every
    epoch's logs (loss, metrics, val_*) as scalars under their names, the
    learning rate as `learning_rate`, and, every `histogram_freq` epochs (0:
    never), a histogram of each parameter j of layer i as `layer{i}/param{j}`.
    View them with `tensorboard --logdir log_dir`.

    Parameters
    ----------
    log_dir : str or path-like, default "logs"
        The directory of the event files.
    histogram_freq : int, default 0
        Write weight histograms every this many epochs (0: never).

    Raises
    ------
    ImportError
        When training starts, if tensorboardX is not installed.

    Examples
    --------
    >>> import nncore
    >>> board = nncore.callbacks.TensorBoard("logs", histogram_freq=1)
    >>> board.log_dir, board.histogram_freq
    ('logs', 1)
    """

    def __init__(self, log_dir="logs", histogram_freq: int = 0):
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) \
                or histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be an integer >= 0, "
                             f"got {histogram_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self._writer = None

    def on_train_begin(self, logs=None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ImportError("TensorBoard needs tensorboardX: pip install "
                              "'nncore[tensorboard]' (or pip install tensorboardX)") from None
        self._writer = SummaryWriter(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        writer = self._writer
        for key, value in (logs or {}).items():
            writer.add_scalar(key, float(value), epoch)
        run = self.network.trainer
        if logs is None or "learning_rate" not in logs:
            writer.add_scalar("learning_rate",
                              run.learning_rate_at(max(run.optimizer.iterations - 1, 0)),
                              epoch)
        if self.histogram_freq and (epoch + 1) % self.histogram_freq == 0:
            for i, layer in enumerate(self.network.layers):
                for j, param in enumerate(layer.params):
                    writer.add_histogram(f"layer{i}/param{j}",
                                         np.asarray(param, np.float64), epoch)
        writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ModelCheckpoint(Callback):
    """Save the network with `network.save(path)` at the end of each epoch,
    or only when `monitor` improved with `save_best_only`.  `filepath` may
    hold format fields: `{epoch}` (1-based) and any logs key, e.g.
    'ckpt-{epoch:02d}-{val_loss:.3f}.nncore'.

    Parameters
    ----------
    filepath : str or path-like
        Where to save, with optional format fields.
    monitor : str, default "val_loss"
        The quantity watched with save_best_only, as for `EarlyStopping`.
    save_best_only : bool, default False
        Save only when `monitor` improved.
    mode : {"auto", "min", "max"}, default "auto"
        Whether smaller or larger is better ("auto": larger for accuracies).
    verbose : int, default 0
        1: print each save.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(-1, 1)
    >>> net = nncore.Network([nncore.Dense(1)], seed=0)
    >>> net.use("mse", optimizer=nncore.optimizers.SGD(0.1))
    Network(...)
    >>> checkpoint = nncore.callbacks.ModelCheckpoint("ckpt-{epoch}.nncore")
    >>> _ = net.fit(x, 3 * x, epochs=2, verbose=0, callbacks=[checkpoint])
    >>> nncore.load("ckpt-2.nncore").count_params()
    2
    """

    def __init__(self, filepath, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", verbose: int = 0):
        self.filepath = os.fspath(filepath)
        check_save_path(self.filepath, "ModelCheckpoint")
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.mode = mode
        self.verbose = int(verbose)
        _Monitor("ModelCheckpoint", monitor, mode)

    def on_train_begin(self, logs=None):
        if not callable(getattr(self.network, "save", None)):
            raise RuntimeError("ModelCheckpoint needs Network.save (nncore.saving), "
                               "which this network does not provide")
        self._tracker = _Monitor("ModelCheckpoint", self.monitor, self.mode)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = self._tracker.value(logs)
            if not self._tracker.improved(current):
                return
            self._tracker.best = current
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.network.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved the network to {path}")


class LearningRateScheduler(Callback):
    """Set the learning rate of the fit at the start of each epoch to
    `schedule(epoch, current_rate)` (epoch counted from 0): the optimizer's,
    or, when fit was given `learning_rate`, that of the call only.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch, current_rate) -> new_rate``.
    verbose : int, default 0
        1: print each epoch's rate.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(-1, 1)
    >>> net = nncore.Network([nncore.Dense(1)], seed=0)
    >>> net.use("mse", optimizer=nncore.optimizers.SGD(0.1))
    Network(...)
    >>> halve = nncore.callbacks.LearningRateScheduler(lambda epoch, rate: 0.1 / 2 ** epoch)
    >>> net.fit(x, 3 * x, epochs=3, verbose=0, callbacks=[halve]).history["learning_rate"]
    [0.1, 0.05, 0.025]
    """

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0):
        if not callable(schedule):
            raise TypeError("LearningRateScheduler: schedule must be callable")
        self.schedule = schedule
        self.verbose = int(verbose)

    def on_epoch_begin(self, epoch, logs=None):
        run = self.network.trainer
        current = run.learning_rate_at(run.optimizer.iterations)
        rate = float(self.schedule(epoch, current))
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"LearningRateScheduler: the schedule returned {rate!r} "
                             f"for epoch {epoch}")
        run.learning_rate = rate
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {rate:g}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.network.trainer.learning_rate


class TerminateOnNaN(Callback):
    """End training at the first batch whose loss is NaN or inf, with the
    weights and optimizer state of the last finite step put back, the stop
    recorded in `History.stopped` and, when fit is verbose, printed (without
    it, `fit` restores the same weights and raises FloatingPointError naming
    the epoch and batch).

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Dense(1)], seed=0)
    >>> net.use("mse", optimizer=nncore.optimizers.SGD(1e3))     # diverges
    Network(...)
    >>> x = np.linspace(-100, 100, 64).reshape(-1, 1)
    >>> history = net.fit(x, x, epochs=20, verbose=0,
    ...                   callbacks=[nncore.callbacks.TerminateOnNaN()])
    >>> history.stopped is not None and bool(np.isfinite(net.layers[0].W).all())
    True
    """

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.network.stop_training = True
            self.network.stopped_on_nan = True


class CSVLogger(Callback):
    """Write one CSV row per epoch (epoch, then the logs) to `filename`.

    Parameters
    ----------
    filename : str or path-like
        The CSV file.
    separator : str, default ","
        The field separator.
    append : bool, default False
        Add to an existing file instead of replacing it.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(-1, 1)
    >>> net = nncore.Network([nncore.Dense(1)], seed=0)
    >>> net.use("mse", optimizer=nncore.optimizers.SGD(0.1))
    Network(...)
    >>> _ = net.fit(x, 3 * x, epochs=2, verbose=0,
    ...             callbacks=[nncore.callbacks.CSVLogger("log.csv")])
    >>> open("log.csv").read().splitlines()[0]
    'epoch,loss'
    """

    def __init__(self, filename, separator: str = ",", append: bool = False):
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.isfile(self.filename) and \
            os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = None
        self._header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self._writer is None:
            self._keys = sorted(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator)
            if not self._header_written:
                self._writer.writerow(["epoch"] + self._keys)
        self._writer.writerow([epoch] + [logs.get(k, "") for k in self._keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        self._file.close()
