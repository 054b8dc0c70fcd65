"""Divergence keeps the last good weights: a fit whose loss or weights
become NaN or inf puts back the weights and optimizer state of a step whose
loss was finite, says so, and records the stop in History."""
import numpy as np
import pytest

import nncore
from nncore.callbacks import Callback, TerminateOnNaN
from nncore.layers import Dense


def diverging(seed=0, optimizer=None):
    net = nncore.Network([Dense(16, activation="relu"), Dense(10), Dense(1)],
                         input_shape=(8,), seed=seed)
    return net.use("mse", optimizer=optimizer or nncore.optimizers.SGD(learning_rate=1e6))


def data(n=256):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 8))
    return x, x.sum(1, keepdims=True) ** 2


def finite(arrays):
    return all(np.isfinite(a).all() for a in arrays)


class Recorder(Callback):
    """The weights before every batch, and each batch's loss."""

    def __init__(self):
        self.before, self.losses = [], []

    def on_train_begin(self, logs=None):
        self.before.append(self.network.get_weights())

    def on_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])
        self.before.append(self.network.get_weights())


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_diverging_fit_raises_and_keeps_finite_weights_and_optimizer_state(tmp_path,
                                                                             optimizer):
    opt = (nncore.optimizers.SGD(learning_rate=1e6) if optimizer == "sgd"
           else nncore.optimizers.Adam(learning_rate=1e6))
    net = diverging(optimizer=opt)
    x, y = data()
    start = net.get_weights()
    with pytest.raises(FloatingPointError, match="were restored") as error:
        net.fit(x, y, epochs=20, batch_size=8, verbose=0)
    assert "the loss became" in str(error.value) or "weights became" in str(error.value)
    weights = net.get_weights()
    assert finite(weights)                     # before: all 195 weights NaN
    assert finite(net.optimizer.get_state())
    assert net.history.stopped is not None and "restored" in net.history.stopped["restored"]
    assert not all(np.array_equal(a, b) for a, b in zip(weights, start)) or \
        net.history.stopped["epoch"] == 0
    net.save(tmp_path / "kept.nncore")
    assert all(np.array_equal(a, b) for a, b in
               zip(nncore.load(tmp_path / "kept.nncore").get_weights(), weights))


def test_terminate_on_nan_restores_the_weights_says_so_and_records_the_stop(capsys):
    net = diverging()
    x, y = data()
    recorder = Recorder()
    history = net.fit(x, y, epochs=5, batch_size=8, verbose=2,
                      callbacks=[recorder, TerminateOnNaN()])
    out = capsys.readouterr().out
    assert "TerminateOnNaN: the loss became" in out and "were restored" in out
    bad = next(i for i, loss in enumerate(recorder.losses) if not np.isfinite(loss))
    assert history.stopped["epoch"] * 32 + history.stopped["batch"] == bad
    weights = net.get_weights()
    assert finite(weights)
    # the weights of a step before the first bad one, whose loss was finite
    matches = [k for k, before in enumerate(recorder.before[:bad])
               if all(np.array_equal(a, b) for a, b in zip(before, weights))]
    assert matches and all(np.isfinite(recorder.losses[k]) for k in range(matches[-1] + 1))
    assert net.history is history and history.stopped["reason"].startswith("the loss")


def test_a_fit_that_converges_records_no_stop():
    net = diverging(optimizer="sgd")
    x, y = data()
    history = net.fit(x / 10, y / 100, epochs=2, verbose=0)
    assert history.stopped is None and np.isfinite(history.history["loss"]).all()
