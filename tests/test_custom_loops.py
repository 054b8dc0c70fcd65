"""Custom training loops: train_on_batch / gradients + apply_gradients loops
equal fit(shuffle=False) bit for bit; test_on_batch, predict_on_batch; bad
arguments."""
import numpy as np
import pytest

import nncore
from nncore import optimizers, regularizers


def make_net(dtype, optimizer, python_layer=False, seed=7):
    layers = [nncore.Dense(8, "tanh", kernel_regularizer=regularizers.L2(1e-3)),
              nncore.Dropout(0.2), nncore.Dense(3)]
    net = nncore.Network(layers, input_shape=(5,), dtype=dtype, seed=seed)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=optimizer)
    return net


def data(n=50):
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, 5)), rng.integers(0, 3, n)


def batches(x, y, w, batch_size):
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size], \
            None if w is None else w[start:start + batch_size]


@pytest.mark.parametrize("optimizer", [lambda: optimizers.Adam(0.01),
                                       lambda: optimizers.SGD(0.05),
                                       lambda: optimizers.SGD(0.05, momentum=0.9)])
@pytest.mark.parametrize("weighted", [False, True])
def test_train_on_batch_loop_equals_fit_bit_for_bit(dtype, optimizer, weighted):
    x, y = data()
    w = np.random.default_rng(4).uniform(0.5, 2, len(x)) if weighted else None
    reference = make_net(dtype, optimizer())
    history = reference.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0,
                            sample_weight=w)
    net = make_net(dtype, optimizer())
    losses = []
    for epoch in range(3):
        total = 0.0
        for xb, yb, wb in batches(x, y, w, 16):
            total += net.train_on_batch(xb, yb, sample_weight=wb) * len(xb)
        losses.append(total / len(x))
    for a, b in zip(net.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(losses, history.history["loss"], rtol=1e-12)
    assert net.optimizer.iterations == reference.optimizer.iterations == 12


@pytest.mark.parametrize("optimizer", [lambda: optimizers.Adam(0.01),
                                       lambda: optimizers.RMSprop(0.01, momentum=0.5)])
def test_gradients_and_apply_gradients_loop_equals_fit_bit_for_bit(dtype, optimizer):
    x, y = data()
    reference = make_net(dtype, optimizer())
    reference.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    net = make_net(dtype, optimizer())
    for epoch in range(2):
        for xb, yb, _ in batches(x, y, None, 16):
            grads = net.gradients(xb, yb)
            assert [g.shape for g in grads] == [p.shape for p in net.params]
            net.optimizer.apply_gradients(grads)
    for a, b in zip(net.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


class Square(nncore.Layer):
    """A Python layer (forces the per-layer Python path)."""

    def forward(self, x, training=False):
        self.x = x
        return x * x

    def backward(self, dy):
        return 2 * self.x * dy


@pytest.mark.parametrize("python_path", [False, True])
def test_gradients_are_the_loss_gradients(python_path):
    x, y = data(20)
    layers = [nncore.Dense(6, "tanh", kernel_regularizer=regularizers.L1L2(1e-2, 1e-2)),
              nncore.Dense(3, bias_regularizer="l2")]
    net = nncore.Network(([Square()] if python_path else []) + layers, input_shape=(5,),
                         dtype="float64", seed=1)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    assert (net.plans.predict_plan(net) is None) == python_path
    before = net.get_weights()
    errors = nncore.check_gradients(net, x, y, max_entries=None)
    assert len(errors) == 4 and max(errors.values()) < 1e-6
    for a, b in zip(net.get_weights(), before):
        np.testing.assert_array_equal(a, b)        # nothing was updated


def test_test_and_predict_on_batch_and_return_forms():
    x, y = data(30)
    net = make_net("float64", "adam")
    net.use(net.loss, optimizer="adam", metrics=["accuracy"])
    loss, accuracy = net.test_on_batch(x, y)
    scores = net.evaluate(x, y)
    assert loss == scores["loss"] and accuracy == scores["accuracy"]
    assert net.test_on_batch(x, y, return_dict=True) == scores
    np.testing.assert_array_equal(net.predict_on_batch(x), net.predict(x))
    logs = net.train_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss", "accuracy"} and np.isfinite(logs["loss"])
    net.history = "kept"
    net.train_on_batch(x, y)
    assert net.history == "kept"          # train_on_batch leaves the fit history alone


def test_apply_gradients_checks_its_arguments():
    x, y = data(10)
    opt = optimizers.Adam()
    with pytest.raises(RuntimeError, match="pass params="):
        opt.apply_gradients([np.zeros(3)])
    w = np.ones(3)
    with pytest.raises(ValueError, match="gradient 0 has shape"):
        opt.apply_gradients([np.zeros(2)], [w])
    with pytest.raises(ValueError, match="1 gradients for 2 parameters"):
        opt.apply_gradients([np.zeros(3)], [w, w.copy()])
    with pytest.raises(ValueError, match="not finite"):
        opt.apply_gradients([np.array([0, np.nan, 0])], [w])
    np.testing.assert_array_equal(w, 1)
    opt = optimizers.SGD(0.5)
    opt.apply_gradients([(np.array([1.0, 2.0, 3.0]), w)])   # Keras-style pairs
    np.testing.assert_allclose(w, [0.5, 0.0, -0.5])
    net = make_net("float32", "adam")
    with pytest.raises(ValueError):
        net.gradients(x[:, :4], y)


def guard_is_free(net):
    guard = net.guard
    return guard._fit_thread is None and guard._predictions == 0 and guard._waiting == 0


def test_apply_gradients_needs_no_guard_held_in_a_custom_loop():
    # a hand-written loop holds nothing between calls: apply_gradients runs
    # with the network free (here from another thread than the one that
    # computed the gradients, with predictions between the steps) and still
    # takes exactly fit's steps
    import threading
    x, y = data()
    reference = make_net("float64", optimizers.Adam(0.01))
    reference.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    net = make_net("float64", optimizers.Adam(0.01))
    errors = []

    def step(grads):
        try:
            assert guard_is_free(net)
            net.optimizer.apply_gradients(grads)
            assert guard_is_free(net)
        except BaseException as error:       # reported by the main thread
            errors.append(error)

    for epoch in range(2):
        for xb, yb, _ in batches(x, y, None, 16):
            grads = net.gradients(xb, yb)
            assert guard_is_free(net)
            worker = threading.Thread(target=step, args=(grads,))
            worker.start()
            worker.join()
            assert not errors, errors
            net.predict(xb)                 # the network stays usable between steps
    for a, b in zip(net.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert net.optimizer.iterations == reference.optimizer.iterations == 8


def test_apply_gradients_after_a_fit_that_raised():
    x, y = data()
    net = make_net("float64", optimizers.SGD(0.1, momentum=0.9))

    class Stop(nncore.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        net.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[Stop()])
    assert guard_is_free(net)
    before = [p.copy() for p in net.params]
    steps = net.optimizer.iterations
    grads = net.gradients(x, y)
    net.optimizer.apply_gradients(grads)
    assert net.optimizer.iterations == steps + 1
    assert all(not np.array_equal(a, b) for a, b in zip(before, net.params))
