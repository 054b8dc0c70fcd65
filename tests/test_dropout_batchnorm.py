"""Dropout and BatchNormalization."""
import numpy as np
import pytest

import nncore
from conv_references import numerical_gradient, relative_error

TOL = {np.dtype("float32"): dict(rtol=1e-5, atol=1e-6),
       np.dtype("float64"): dict(rtol=1e-12, atol=1e-12)}


def built(layer, input_shape, dtype, seed=0):
    layer.dtype = np.dtype(dtype)
    layer.rng = np.random.default_rng(seed)
    layer.build(input_shape)
    return layer


def test_dropout_keep_rate_scaling_and_backward(dtype):
    layer = built(nncore.Dropout(0.3), (100, 10), dtype)
    x = np.random.default_rng(0).uniform(1, 2, size=(20, 100, 10)).astype(dtype)
    y = layer.forward(x, training=True)
    kept = y != 0
    # 20,000 draws: the kept share is within 5 standard deviations of 0.7
    assert abs(kept.mean() - 0.7) < 5 * np.sqrt(0.7 * 0.3 / kept.size)
    np.testing.assert_allclose(y[kept], x[kept] / dtype.type(0.7), **TOL[dtype])
    dy = np.ones_like(x)
    np.testing.assert_allclose(layer.backward(dy), kept / dtype.type(0.7), **TOL[dtype])


def test_dropout_is_identity_at_inference(dtype):
    layer = built(nncore.Dropout(0.5), (7, 3), dtype)
    x = np.random.default_rng(1).normal(size=(4, 7, 3)).astype(dtype)
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)
    net = nncore.Network([nncore.Dropout(0.5)], input_shape=(7, 3), dtype=dtype, seed=0)
    np.testing.assert_array_equal(net.predict(x), x)


def test_dropout_masks_follow_the_seed():
    x = np.ones((8, 50), np.float32)

    def masks(seed):
        layer = built(nncore.Dropout(0.5), (50,), "float32", seed)
        return [layer.forward(x, training=True) for _ in range(2)]

    a, b, c = masks(4), masks(4), masks(5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])      # a new mask every step
    assert not np.array_equal(a[0], c[0])      # another seed, other masks


def test_dropout_training_is_reproducible_with_network_seed():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=32)

    def train(seed):
        net = nncore.Network([nncore.Conv2D(4, 3, activation="relu"), nncore.Flatten(),
                              nncore.Dropout(0.5), nncore.Dense(3)], seed=seed)
        net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True))
        net.fit(x, y, epochs=3, batch_size=8, learning_rate=0.05, verbose=0)
        return net.params

    for a, b in zip(train(7), train(7)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(train(7), train(8)))


def test_dropout_rate_must_be_valid():
    with pytest.raises(ValueError, match=r"Dropout: rate must be in \[0, 1\), got 1.0"):
        nncore.Dropout(1.0)


@pytest.mark.parametrize("shape", [(5, 4, 3), (6,)])
def test_batchnorm_training_and_inference(dtype, shape):
    rng = np.random.default_rng(3)
    layer = built(nncore.BatchNormalization(momentum=0.9, epsilon=1e-3), shape, dtype)
    channels = shape[-1]
    layer.gamma[:] = rng.uniform(0.5, 2, channels)
    layer.beta[:] = rng.normal(size=channels)
    x = rng.normal(2, 3, size=(7,) + shape).astype(dtype)
    y = layer.forward(x, training=True)
    x64 = x.astype(np.float64).reshape(-1, channels)
    mean, var = x64.mean(axis=0), x64.var(axis=0)
    expected = layer.gamma * (x64 - mean) / np.sqrt(var + 1e-3) + layer.beta
    np.testing.assert_allclose(y.reshape(-1, channels), expected, **TOL[dtype])
    # Keras moving statistics: momentum * moving + (1 - momentum) * batch (biased variance)
    np.testing.assert_allclose(layer.moving_mean, 0.1 * mean, **TOL[dtype])
    np.testing.assert_allclose(layer.moving_var, 0.9 + 0.1 * var, **TOL[dtype])
    # inference uses the moving statistics, and does not change them
    z = rng.normal(size=(3,) + shape).astype(dtype)
    out = layer.forward(z)
    expected = layer.gamma * (z.astype(np.float64) - layer.moving_mean) / \
        np.sqrt(layer.moving_var.astype(np.float64) + 1e-3) + layer.beta
    np.testing.assert_allclose(out, expected, **TOL[dtype])
    np.testing.assert_allclose(layer.moving_mean, 0.1 * mean, **TOL[dtype])
    assert layer.state[0] is layer.moving_mean and layer.state[1] is layer.moving_var
    assert layer.count_params() == 2 * channels


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(training):
    rng = np.random.default_rng(4)
    layer = built(nncore.BatchNormalization(), (3, 2, 4), "float64")
    layer.gamma[:] = rng.uniform(0.5, 2, 4)
    layer.beta[:] = rng.normal(size=4)
    layer.moving_mean[:] = rng.normal(size=4)
    layer.moving_var[:] = rng.uniform(0.5, 2, 4)
    x = rng.normal(1, 2, size=(5, 3, 2, 4))
    r = rng.normal(size=x.shape)
    loss = lambda: float(np.sum(r * layer.forward(x, training=training)))
    layer.forward(x, training=training)
    analytic = [layer.backward(r)] + [g.copy() for g in layer.grads]
    numeric = [numerical_gradient(loss, x)] + [numerical_gradient(loss, p) for p in layer.params]
    for a, b in zip(analytic, numeric):
        assert relative_error(a, b) < 1e-6


def test_batchnorm_network_predicts_with_moving_statistics():
    rng = np.random.default_rng(5)
    x = rng.normal(3, 2, size=(64, 4)).astype(np.float32)
    net = nncore.Network([nncore.BatchNormalization(momentum=0.5)], seed=0).use("mse")
    net.fit(x, x, epochs=20, batch_size=64, learning_rate=1e-9, verbose=0)
    bn = net.layers[0]
    # after 20 full-batch steps the moving statistics are the data's (to 0.5**20)
    np.testing.assert_allclose(bn.moving_mean, x.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(bn.moving_var, x.var(axis=0), rtol=1e-4)
    np.testing.assert_allclose(net.predict(x[:5]), (x[:5] - x.mean(0)) /
                               np.sqrt(x.var(0) + 1e-3), rtol=1e-3, atol=1e-4)
