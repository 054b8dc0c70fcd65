"""Bad input raises a clear exception that names what was expected."""
import numpy as np
import pytest

import nncore
from nncore.activations import tanh, tanh_prime
from nncore.losses import mse, mse_prime


def article_net():
    net = nncore.Network()
    net.add(nncore.FCLayer(4, 3))
    net.add(nncore.ActivationLayer(tanh, tanh_prime))
    net.use(mse, mse_prime)
    return net


X = np.zeros((5, 1, 4))
Y = np.zeros((5, 1, 3))


@pytest.mark.parametrize("x,y,error,match", [
    (X, Y[:4], ValueError, "x has 5 samples but y has 4"),
    (np.zeros((5, 1, 7)), Y, ValueError, r"layer 0 \(FCLayer\): expected input shape \(None, 1, 4\), received \(None, 1, 7\)"),
    (np.array([["a"] * 4] * 5)[:, None], Y, TypeError, "numeric"),
    (np.empty((5,), object), Y, TypeError, "numeric"),
    (np.zeros((5, 1, 4), complex), Y, TypeError, "numeric"),
    (np.full((5, 1, 4), np.nan), Y, ValueError, "NaN or inf"),
    (X, np.full((5, 1, 3), np.inf), ValueError, "NaN or inf"),
    (np.zeros((0, 1, 4)), Y[:0], ValueError, "empty"),
    (X, np.zeros((5, 2)), ValueError, r"expected targets of shape \(None, 1, 3\)"),
])
def test_fit_rejects_bad_data(x, y, error, match):
    with pytest.raises(error, match=match):
        article_net().fit(x, y, epochs=1, verbose=0)


def test_wrong_feature_count_after_build_names_the_layer():
    net = nncore.Network([nncore.Dense(3), nncore.Tanh()])
    net.use("mse").fit(np.zeros((4, 6)), np.zeros((4, 3)), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"layer 0 \(Dense\): expected input shape "
                                         r"\(None, 6\), received \(2, 5\)"):
        net.predict(np.zeros((2, 5)))


def test_fixed_input_size_mismatch_is_reported_at_build():
    net = nncore.Network([nncore.Dense(3), nncore.Dense(2, input_size=4)])
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\): expected input shape "
                                         r"\(None, 4\), received \(None, 3\)"):
        net.build((6,))


@pytest.mark.parametrize("kwargs,match", [
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(epochs=2.5), "epochs must be a positive integer"),
    (dict(epochs=1, batch_size=0), "batch_size must be a positive integer"),
    (dict(epochs=1, learning_rate=-0.1), "learning_rate must be a positive"),
    (dict(epochs=1, learning_rate=float("nan")), "learning_rate must be a positive"),
])
def test_fit_rejects_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        article_net().fit(X, Y, verbose=0, **kwargs)


def test_fit_before_use():
    net = nncore.Network([nncore.Dense(3)])
    with pytest.raises(RuntimeError, match=r"use\(\.\.\.\) before fit"):
        net.fit(X, Y, epochs=1)


def test_predict_before_build():
    with pytest.raises(RuntimeError, match="not built"):
        nncore.Network([nncore.Dense(3)]).predict(np.zeros((2, 4)))


@pytest.mark.parametrize("make,match", [
    (lambda: nncore.Dense(0), "units must be a positive integer"),
    (lambda: nncore.Dense(3, activation="swish"), "unknown activation"),
    (lambda: nncore.Dense(3, kernel_initializer="nope"), "unknown initializer"),
    (lambda: nncore.Activation("nope"), "unknown activation"),
    (lambda: nncore.LeakyReLU(alpha=-1), "alpha must be"),
    (lambda: nncore.Network(dtype="int32"), "dtype must be float32 or float64"),
    (lambda: nncore.Network().use("hinge"), "unknown loss"),
    (lambda: nncore.Network().use(lambda t, p: 0.0), "needs its derivative"),
])
def test_bad_constructor_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_sparse_labels_out_of_range():
    net = nncore.Network([nncore.Dense(3)]).use("sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        net.fit(np.zeros((4, 2)), np.array([0, 1, 2, 3]), epochs=1, verbose=0)


def test_integer_labels_with_categorical_loss_get_a_hint():
    net = nncore.Network([nncore.Dense(3)]).use("categorical_crossentropy")
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        net.fit(np.zeros((4, 2)), np.array([0, 1, 2, 1]), epochs=1, verbose=0)


def test_fortran_and_strided_inputs_are_accepted():
    rng = np.random.default_rng(0)
    x = np.asfortranarray(rng.normal(size=(6, 4)))
    y = rng.normal(size=(12, 3))[::2]
    net = nncore.Network([nncore.Dense(3)], dtype="float64", seed=0).use("mse")
    net.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_allclose(net.predict(x), net.predict(np.ascontiguousarray(x)))


def test_add_after_use_and_non_layers():
    net = nncore.Network([nncore.Dense(3)], input_shape=(2,)).build()
    net.add(nncore.Dense(2))          # built at once, on the known shape
    assert net.layers[-1].built and net.output_shape == (2,)
    net.predict(np.ones((1, 2)))
    with pytest.raises(RuntimeError, match="already been used"):
        net.add(nncore.Dense(2))
    with pytest.raises(TypeError, match="takes a nncore Layer"):
        nncore.Network().add("dense")
