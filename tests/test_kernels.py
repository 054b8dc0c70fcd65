"""Every native kernel against a NumPy reference, in float32 and float64."""
import numpy as np
import pytest

import nncore
from nncore import losses
from nncore._native.optim import SGDUpdater
from nncore._native.optim import apply_update
from reference import ACTIVATIONS, loss_reference, softmax

# float32 kernels accumulate in float32 (BLAS) or float64; these bound the error
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def tol(dtype):
    return TOL[np.dtype(dtype).type]


def build(layer, shape, dtype, seed=0):
    layer.dtype = np.dtype(dtype)
    layer.rng = np.random.default_rng(seed)
    layer.build(shape)
    return layer


@pytest.mark.parametrize("shape", [(7,), (1, 7), (3, 7)])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("batch", [1, 5])
def test_dense_forward_backward(dtype, shape, use_bias, batch):
    rng = np.random.default_rng(1)
    layer = build(nncore.Dense(4, use_bias=use_bias), shape, dtype)
    if use_bias:
        layer.b[:] = rng.normal(size=4)
    x = rng.normal(size=(batch,) + shape).astype(dtype)
    dy = rng.normal(size=(batch,) + shape[:-1] + (4,)).astype(dtype)
    W = layer.W.astype(np.float64)
    b = layer.b.astype(np.float64) if use_bias else 0
    y = layer.forward(x)
    np.testing.assert_allclose(y, x.astype(np.float64) @ W + b, **tol(dtype))
    dx = layer.backward(dy)
    x2 = x.reshape(-1, shape[-1]).astype(np.float64)
    dy2 = dy.reshape(-1, 4).astype(np.float64)
    np.testing.assert_allclose(dx, dy.astype(np.float64) @ W.T, **tol(dtype))
    np.testing.assert_allclose(layer.grads[0], x2.T @ dy2, **tol(dtype))
    if use_bias:
        np.testing.assert_allclose(layer.grads[1], dy2.sum(0), **tol(dtype))
    assert y.dtype == dtype and dx.dtype == dtype


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_forward_backward(dtype, name):
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(6, 2, 5)) * 3).astype(dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    layer = build(nncore.Activation(name, alpha=0.1), (2, 5), dtype)
    f, f_prime = ACTIVATIONS[name]
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(layer.forward(x), f(x64, 0.1), **tol(dtype))
    np.testing.assert_allclose(layer.backward(dy), f_prime(x64, 0.1) * dy, **tol(dtype))


def test_softmax_forward_backward(dtype):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(4, 3, 6)) * 5).astype(dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    layer = build(nncore.Softmax(), (3, 6), dtype)
    y = softmax(x.astype(np.float64))
    np.testing.assert_allclose(layer.forward(x), y, **tol(dtype))
    expected = y * (dy - (dy * y).sum(-1, keepdims=True))
    np.testing.assert_allclose(layer.backward(dy), expected, **tol(dtype))


def test_softmax_is_stable_for_large_inputs(dtype):
    layer = build(nncore.Softmax(), (3,), dtype)
    y = layer.forward(np.array([[1000.0, 1001.0, -1000.0]], dtype))
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.sum(), 1, rtol=1e-6)


LOSSES = [
    ("mse", losses.MSE(), False),
    ("binary_crossentropy", losses.BinaryCrossentropy(), False),
    ("binary_crossentropy", losses.BinaryCrossentropy(from_logits=True), True),
    ("categorical_crossentropy", losses.CategoricalCrossentropy(), False),
    ("categorical_crossentropy", losses.CategoricalCrossentropy(from_logits=True), True),
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy(), False),
    ("sparse_categorical_crossentropy",
     losses.SparseCategoricalCrossentropy(from_logits=True), True),
]


def loss_inputs(kind, from_logits, dtype, rng, shape=(5, 2, 4)):
    z = rng.normal(size=shape)
    if kind == "binary_crossentropy":
        pred = z if from_logits else 1 / (1 + np.exp(-z))
        target = rng.integers(0, 2, shape).astype(float)
    elif "categorical" in kind:
        pred = z if from_logits else softmax(z)
        labels = rng.integers(0, shape[-1], shape[:-1])
        target = labels if kind.startswith("sparse") else np.eye(shape[-1])[labels]
    else:
        pred, target = z, rng.normal(size=shape)
    return pred.astype(dtype), target.astype(dtype)


@pytest.mark.parametrize("kind,loss,from_logits", LOSSES)
def test_loss_value(dtype, kind, loss, from_logits):
    rng = np.random.default_rng(4)
    pred, target = loss_inputs(kind, from_logits, dtype, rng)
    expected = loss_reference(kind, pred, target, from_logits)
    np.testing.assert_allclose(loss(target, pred), expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_logit_losses_are_stable(dtype):
    pred = np.array([[800.0, -800.0, 0.0]], dtype)
    target = np.array([[0.0, 1.0, 0.0]], dtype)
    for loss in (losses.CategoricalCrossentropy(from_logits=True),
                 losses.BinaryCrossentropy(from_logits=True)):
        value = loss(target, pred)
        assert np.isfinite(value) and value > 100
        assert np.isfinite(loss.gradient(target, pred)).all()


def test_sgd_update(dtype):
    rng = np.random.default_rng(5)
    params = [rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=4).astype(dtype)]
    grads = [rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=4).astype(dtype)]
    expected = [p.astype(np.float64) for p in params]
    updater = SGDUpdater(np.dtype(dtype))
    for step in range(3):
        apply_update(updater, params, grads, 0.1)
        expected = [e - 0.1 * g for e, g in zip(expected, grads)]
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p, e, **tol(dtype))


@pytest.mark.parametrize("size", [1, 511, 4096, 4097, 70_000, 1_200_001])
def test_all_finite_finds_every_nan_and_inf(dtype, size):
    from nncore._native.data import all_finite
    values = np.random.default_rng(size).normal(size=size).astype(dtype)
    assert all_finite(values) == bool(np.isfinite(values).all())
    for index in sorted({0, size // 3, max(0, size - 4097), size - 1}):
        for bad in (np.nan, np.inf, -np.inf):
            broken = values.copy()
            broken[index] = bad
            assert not all_finite(broken), (index, bad)
    big = np.full(size, np.finfo(dtype).max, dtype)
    assert all_finite(big)
    # the extremes of the finite values (the check reads the exponent bits) and a negative NaN
    info = np.finfo(dtype)
    edges = np.resize(np.array([-info.max, info.smallest_subnormal, -0.0, info.tiny,
                                -info.smallest_subnormal], dtype), size)
    assert all_finite(edges)
    edges[-1] = -np.abs(np.array(np.nan, dtype))
    assert not all_finite(edges)
