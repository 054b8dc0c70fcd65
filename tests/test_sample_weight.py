"""Per-sample loss weights: kernels against NumPy, gradients by finite
differences, fit/evaluate with sample_weight and class_weight, bad weights."""
import numpy as np
import pytest

import nncore
from nncore import losses
from nncore._plans import native_ops
from reference import loss_reference, numeric_gradient, relative_error
from test_kernels import LOSSES, loss_inputs


def weights_for(n, rng):
    w = rng.uniform(0, 3, n)
    w[1] = 0.0                      # a sample that must not count
    return w


@pytest.mark.parametrize("kind,loss,from_logits", LOSSES)
def test_weighted_loss_value(dtype, kind, loss, from_logits):
    rng = np.random.default_rng(11)
    pred, target = loss_inputs(kind, from_logits, dtype, rng)
    w = weights_for(len(pred), rng)
    expected = loss_reference(kind, pred, target, from_logits, w)
    assert expected != pytest.approx(loss_reference(kind, pred, target, from_logits))
    np.testing.assert_allclose(loss(target, pred, sample_weight=w), expected,
                               rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("kind,loss,from_logits", LOSSES)
def test_weighted_loss_gradient(kind, loss, from_logits):
    rng = np.random.default_rng(12)
    pred, target = loss_inputs(kind, from_logits, np.float64, rng)
    w = weights_for(len(pred), rng)
    grad = loss.gradient(target, pred, sample_weight=w)
    numeric = numeric_gradient(lambda: loss(target, pred, sample_weight=w), pred)
    assert relative_error(grad, numeric) < 1e-6
    reference = numeric_gradient(
        lambda: loss_reference(kind, pred, target, from_logits, w), pred)
    assert relative_error(grad, reference) < 1e-6
    assert not grad[1].any()        # the zero-weight sample has no gradient


def test_unit_weights_change_nothing(dtype):
    rng = np.random.default_rng(13)
    pred, target = loss_inputs("categorical_crossentropy", True, dtype, rng)
    loss = losses.CategoricalCrossentropy(from_logits=True)
    ones = np.ones(len(pred))
    assert loss(target, pred, sample_weight=ones) == loss(target, pred)
    np.testing.assert_array_equal(loss.gradient(target, pred, sample_weight=ones),
                                  loss.gradient(target, pred))


def small_net(dtype="float64", loss="mse", units=2, optimizer=None):
    net = nncore.Network([nncore.Dense(5, activation="tanh"), nncore.Dense(units)],
                         input_shape=(3,), dtype=dtype, seed=1).build()
    net.use(loss, optimizer=optimizer)
    return net


def test_fit_step_follows_the_weighted_loss_gradient():
    # one full-batch SGD step moves the weights by -lr * d(weighted loss)/dW,
    # with that gradient taken by finite differences of evaluate(sample_weight)
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    w = weights_for(8, rng)
    net = small_net()
    before = [p.copy() for p in net.params]
    numeric = [numeric_gradient(lambda: net.evaluate(x, y, sample_weight=w)["loss"], p)
               for p in net.params]
    lr = 0.1
    net.fit(x, y, epochs=1, batch_size=8, shuffle=False, learning_rate=lr, verbose=0,
            sample_weight=w)
    for p, p0, g in zip(net.params, before, numeric):
        assert relative_error((p0 - p) / lr, g) < 1e-6


def test_fit_loss_is_the_weighted_mean():
    rng = np.random.default_rng(15)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    w = weights_for(8, rng)
    net = small_net()
    expected = loss_reference("mse", net.predict(x), y, weights=w)
    history = net.fit(x, y, epochs=1, batch_size=8, shuffle=False, learning_rate=1e-12,
                      verbose=0, sample_weight=w)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-9)


def test_per_sample_sgd_with_weights_scales_each_step():
    # per-sample SGD (the deferred-window path) with weight w_i is the step
    # of sample i at learning rate lr * w_i
    rng = np.random.default_rng(16)
    x, y = rng.normal(size=(70, 3)), rng.normal(size=(70, 2))
    w = weights_for(70, rng)
    weighted, stepped = small_net(), small_net()
    weighted.fit(x, y, epochs=1, batch_size=1, shuffle=False, learning_rate=0.05,
                 verbose=0, sample_weight=w)
    for i in range(70):
        if w[i]:
            stepped.fit(x[i:i + 1], y[i:i + 1], epochs=1, batch_size=1,
                        learning_rate=0.05 * w[i], verbose=0)
    for a, b in zip(weighted.params, stepped.params):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


class PythonTanh(nncore.Layer):
    """A NumPy layer: networks holding it train through the Python loop."""

    def build(self, input_shape):
        super().build(input_shape)
        self.output_shape = tuple(input_shape)

    def forward(self, x, training=False):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y ** 2)


def test_python_loop_weighs_like_the_native_plan(dtype):
    rng = np.random.default_rng(17)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    w = rng.uniform(0, 2, 40)
    nets = []
    for middle in (nncore.Tanh(), PythonTanh()):
        net = nncore.Network([nncore.Dense(6), middle, nncore.Dense(3)], input_shape=(3,),
                             dtype=dtype, seed=2).build()
        net.use(losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
        net.fit(x, y, epochs=3, batch_size=8, verbose=0, sample_weight=w,
                class_weight={1: 3.0})
        nets.append(net)
    assert native_ops(nets[1].layers) is None
    for a, b in zip(nets[0].params, nets[1].params):
        np.testing.assert_allclose(a, b, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("loss,targets", [
    ("sparse_categorical_crossentropy", lambda labels: labels),
    ("categorical_crossentropy", lambda labels: np.eye(3)[labels]),
])
def test_class_weight_equals_the_matching_sample_weight(loss, targets):
    rng = np.random.default_rng(18)
    x, labels = rng.normal(size=(30, 3)), rng.integers(0, 3, 30)
    class_weight = {0: 0.5, 2: 4.0}
    by_class, by_sample = small_net(units=3, loss=loss), small_net(units=3, loss=loss)
    by_class.fit(x, targets(labels), epochs=2, batch_size=4, verbose=0,
                 class_weight=class_weight)
    by_sample.fit(x, targets(labels), epochs=2, batch_size=4, verbose=0,
                  sample_weight=np.array([class_weight.get(c, 1.0) for c in labels]))
    for a, b in zip(by_class.params, by_sample.params):
        np.testing.assert_array_equal(a, b)


def test_binary_class_weight_and_evaluate():
    rng = np.random.default_rng(19)
    x, y = rng.normal(size=(20, 3)), rng.integers(0, 2, (20, 1)).astype(float)
    net = small_net(units=1, loss=losses.BinaryCrossentropy(from_logits=True))
    w = np.where(y[:, 0] == 1, 5.0, 1.0)
    expected = loss_reference("binary_crossentropy", net.predict(x), y, True, w)
    assert net.evaluate(x, y, sample_weight=w)["loss"] == pytest.approx(expected, rel=1e-12)
    a, b = net.copy(), net.copy()
    a.fit(x, y, epochs=1, verbose=0, class_weight={1: 5.0})
    b.fit(x, y, epochs=1, verbose=0, sample_weight=w)
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(sample_weight=-np.ones(6)), ValueError, "non-negative"),
    (dict(sample_weight=np.r_[np.ones(5), np.nan]), ValueError, "NaN or inf"),
    (dict(sample_weight=np.ones(5)), ValueError, r"shape \(6,\), received \(5,\)"),
    (dict(sample_weight=np.ones((6, 2))), ValueError, r"shape \(6,\), received \(6, 2\)"),
    (dict(sample_weight=["a"] * 6), TypeError, "numeric"),
    (dict(class_weight={5: 1.0}), ValueError, r"unknown class 5; .* 0\.\.2"),
    (dict(class_weight={0: -1.0}), ValueError, "class 0 must be a finite non-negative"),
    (dict(class_weight={0: "big"}), TypeError, "class 0 must be a number"),
    (dict(class_weight=[1.0, 2.0]), TypeError, "dict from class index"),
    (dict(sample_weight=np.zeros(6)), ValueError, "every weight is zero"),
    (dict(class_weight={0: 0, 1: 0, 2: 0}), ValueError,
     "sample_weight x class_weight: every weight is zero"),
])
def test_bad_weights(kwargs, error, message):
    net = small_net(units=3, loss="sparse_categorical_crossentropy")
    before = [p.copy() for p in net.params]
    with pytest.raises(error, match=message):
        net.fit(np.zeros((6, 3)), np.arange(6) % 3, verbose=0, **kwargs)
    for p, q in zip(net.params, before):
        np.testing.assert_array_equal(p, q)


def test_class_weight_needs_class_targets():
    net = small_net(units=2)
    with pytest.raises(ValueError, match="one-hot target rows"):
        net.fit(np.zeros((4, 3)), np.full((4, 2), 0.3), verbose=0, class_weight={0: 2.0})


def test_function_losses_cannot_weigh():
    net = nncore.Network([nncore.Dense(1)], input_shape=(2,), seed=0)
    net.use(losses.mse, lambda t, p: 2 * (p - t) / t.size)   # a Python FunctionLoss
    with pytest.raises(TypeError, match="Python functions has no per-sample weights"):
        net.fit(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0, sample_weight=np.ones(4))


def test_loss_call_checks_weights():
    with pytest.raises(ValueError, match=r"MSE: sample_weight: expected one weight per "
                                         r"sample, shape \(2,\)"):
        losses.MSE()(np.zeros((2, 3)), np.zeros((2, 3)), sample_weight=np.ones(3))
