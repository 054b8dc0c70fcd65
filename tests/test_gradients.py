"""Central finite-difference gradient checks in float64 (relative error < 1e-6)."""
import numpy as np
import pytest

import nncore
from reference import numeric_gradient, relative_error, loss_reference
from test_kernels import LOSSES, build, loss_inputs

LIMIT = 1e-6


def layer_loss(layer, x, weights):
    """A scalar of the layer output whose gradient w.r.t. the output is `weights`."""
    return lambda: float(np.sum(layer.forward(x) * weights))


@pytest.mark.parametrize("shape", [(5,), (2, 5)])
def test_dense_gradients(shape):
    rng = np.random.default_rng(0)
    layer = build(nncore.Dense(3), shape, np.float64)
    layer.b[:] = rng.normal(size=3)
    x = rng.normal(size=(4,) + shape)
    weights = rng.normal(size=(4,) + shape[:-1] + (3,))
    f = layer_loss(layer, x, weights)
    layer.forward(x)
    dx = layer.backward(weights)
    dW, db = [g.copy() for g in layer.grads]
    assert relative_error(dx, numeric_gradient(f, x)) < LIMIT
    assert relative_error(dW, numeric_gradient(f, layer.W)) < LIMIT
    assert relative_error(db, numeric_gradient(f, layer.b)) < LIMIT


@pytest.mark.parametrize("name", ["identity", "tanh", "sigmoid", "relu", "leaky_relu",
                                  "softmax"])
def test_activation_gradients(name):
    rng = np.random.default_rng(1)
    layer = build(nncore.Activation(name, alpha=0.2), (3, 4), np.float64)
    x = rng.normal(size=(2, 3, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep relu's kink away from the difference step
    weights = rng.normal(size=x.shape)
    layer.forward(x)
    dx = layer.backward(weights)
    assert relative_error(dx, numeric_gradient(layer_loss(layer, x, weights), x)) < LIMIT


@pytest.mark.parametrize("kind,loss,from_logits", LOSSES)
def test_loss_gradients(kind, loss, from_logits):
    rng = np.random.default_rng(2)
    pred, target = loss_inputs(kind, from_logits, np.float64, rng)
    grad = loss.gradient(target, pred)
    numeric = numeric_gradient(lambda: loss(target, pred), pred)
    assert relative_error(grad, numeric) < LIMIT
    # the float32 kernel against the float64 reference's numeric gradient
    pred32, target32 = pred.astype(np.float32), target.astype(np.float32)
    reference = numeric_gradient(lambda: loss_reference(kind, pred, target, from_logits), pred)
    assert relative_error(loss.gradient(target32, pred32), reference) < 1e-4


def test_whole_network_gradients():
    rng = np.random.default_rng(3)
    net = nncore.Network([nncore.Dense(6, activation="tanh"), nncore.Dense(5),
                          nncore.Sigmoid(), nncore.Dense(3), nncore.Softmax()],
                         input_shape=(4,), dtype="float64", seed=0).build()
    net.use("categorical_crossentropy")
    x = rng.normal(size=(5, 4))
    y = np.eye(3)[rng.integers(0, 3, 5)]

    def loss():
        out = x
        for layer in net.layers:
            out = layer.forward(out)
        return net.loss(y, out)

    out = x
    for layer in net.layers:
        out = layer.forward(out, training=True)
    grad = net.loss.gradient(y, out)
    for layer in reversed(net.layers):
        grad = layer.backward(grad)
    analytic = [g.copy() for g in net.grads]
    assert relative_error(grad, numeric_gradient(loss, x)) < LIMIT
    for p, g in zip(net.params, analytic):
        assert relative_error(g, numeric_gradient(loss, p)) < LIMIT
