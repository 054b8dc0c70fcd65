"""Conv2D and pooling against sliding-window NumPy references, and gradient checks."""
import numpy as np
import pytest

import nncore
from nncore._native.plan import Plan
from nncore._plans import native_ops
from conv_references import (conv_backward, conv_forward, numerical_gradient, pool_backward,
                             pool_forward, relative_error)

TOL = {np.dtype("float32"): dict(rtol=2e-4, atol=2e-5),
       np.dtype("float64"): dict(rtol=1e-10, atol=1e-12)}

# (input (n, h, w, c), kernel (kh, kw), filters, strides, padding)
CONV_CASES = [
    ((2, 7, 9, 3), (3, 3), 4, (1, 1), "valid"),
    ((3, 7, 9, 3), (3, 3), 4, (2, 2), "valid"),
    ((2, 7, 9, 2), (3, 5), 3, (1, 1), "same"),
    ((2, 8, 7, 3), (3, 3), 5, (2, 2), "same"),
    ((2, 6, 5, 2), (4, 2), 3, (2, 1), "same"),
    ((2, 5, 6, 3), (3, 3), 2, (1, 2), (1, 2)),
    ((3, 5, 5, 4), (1, 1), 3, (1, 1), "valid"),
    ((1, 10, 10, 1), (3, 3), 2, (1, 1), "valid"),
]


def built(layer, input_shape, dtype, seed=0):
    layer.dtype = np.dtype(dtype)
    layer.rng = np.random.default_rng(seed)
    layer.build(input_shape)
    return layer


@pytest.mark.parametrize("shape,kernel,filters,strides,padding", CONV_CASES)
def test_conv2d_matches_reference(dtype, shape, kernel, filters, strides, padding):
    rng = np.random.default_rng(1)
    layer = built(nncore.Conv2D(filters, kernel, strides, padding), shape[1:], dtype)
    layer.bias[:] = rng.normal(size=filters)
    x = rng.normal(size=shape).astype(dtype)
    y = layer.forward(x)
    expected = conv_forward(x, layer.kernel, layer.bias, strides, padding)
    assert y.dtype == dtype and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    dy = rng.normal(size=y.shape).astype(dtype)
    dx = layer.backward(dy)
    ref_dx, ref_dk, ref_db = conv_backward(x, layer.kernel, dy, strides, padding)
    np.testing.assert_allclose(dx, ref_dx, **TOL[dtype])
    np.testing.assert_allclose(layer.grads[0], ref_dk, **TOL[dtype])
    np.testing.assert_allclose(layer.grads[1], ref_db, **TOL[dtype])


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("shape,pool,strides,padding", [
    ((2, 6, 6, 3), (2, 2), None, "valid"),
    ((3, 7, 9, 2), (3, 3), (2, 2), "valid"),
    ((2, 7, 9, 3), (2, 2), None, "same"),
    ((2, 7, 8, 2), (3, 2), (2, 3), "same"),
    ((2, 5, 7, 3), (3, 3), (1, 1), "same"),
    ((2, 5, 7, 2), (3, 3), (2, 2), (1, 1)),
])
def test_pooling_matches_reference(dtype, kind, shape, pool, strides, padding):
    rng = np.random.default_rng(2)
    cls = nncore.MaxPool2D if kind == "max" else nncore.AvgPool2D
    layer = built(cls(pool, strides, padding), shape[1:], dtype)
    x = rng.normal(size=shape).astype(dtype)
    s = pool if strides is None else strides
    y = layer.forward(x)
    expected = pool_forward(x, kind, pool, s, padding)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    dy = rng.normal(size=y.shape).astype(dtype)
    np.testing.assert_allclose(layer.backward(dy), pool_backward(x, dy, kind, pool, s, padding),
                               **TOL[dtype])


def test_global_average_pooling_and_flatten(dtype):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 5, 4, 6)).astype(dtype)
    gap = built(nncore.GlobalAveragePooling2D(), x.shape[1:], dtype)
    np.testing.assert_allclose(gap.forward(x), x.astype(np.float64).mean(axis=(1, 2)),
                               **TOL[dtype])
    dy = rng.normal(size=(3, 6)).astype(dtype)
    np.testing.assert_allclose(gap.backward(dy), np.broadcast_to(dy[:, None, None, :] / 20,
                                                                 x.shape), **TOL[dtype])
    flat = built(nncore.Flatten(), x.shape[1:], dtype)
    np.testing.assert_array_equal(flat.forward(x), x.reshape(3, -1))
    np.testing.assert_array_equal(flat.backward(x.reshape(3, -1)), x)
    article = built(nncore.FlattenLayer(), x.shape[1:], dtype)
    assert article.forward(x).shape == (3, 1, 120)


# ------------------------------------------------------------ gradient checks

def check_layer_gradients(layer, x, training=False, seed=5):
    """float64 central differences of sum(R * forward(x)) w.r.t. x and every param."""
    r = np.random.default_rng(seed).normal(size=(x.shape[0],) + layer.output_shape)
    loss = lambda: float(np.sum(r * layer.forward(x, training=training)))
    layer.forward(x, training=training)
    dx = layer.backward(r)
    analytic = [dx] + [g.copy() for g in layer.grads]
    numeric = [numerical_gradient(loss, x)] + [numerical_gradient(loss, p) for p in layer.params]
    for a, b in zip(analytic, numeric):
        assert relative_error(a, b) < 1e-6


@pytest.mark.parametrize("strides,padding", [((1, 1), "valid"), ((2, 2), "same"),
                                             ((2, 1), (1, 0))])
def test_conv2d_gradients(strides, padding):
    # input depth 3 != output depth 4: the article's bias-gradient bug would show here
    rng = np.random.default_rng(4)
    layer = built(nncore.Conv2D(4, (3, 2), strides, padding), (6, 5, 3), "float64")
    layer.bias[:] = rng.normal(size=4)
    check_layer_gradients(layer, rng.normal(size=(2, 6, 5, 3)))


def test_article_conv_layer_gradients():
    rng = np.random.default_rng(6)
    layer = built(nncore.ConvLayer((6, 6, 2), (3, 3), 3), (6, 6, 2), "float64")
    layer.bias[:] = rng.normal(size=3)
    check_layer_gradients(layer, rng.normal(size=(1, 6, 6, 2)))


@pytest.mark.parametrize("cls", [nncore.MaxPool2D, nncore.AvgPool2D])
def test_pooling_gradients(cls):
    layer = built(cls((3, 2), (2, 2), "same"), (7, 6, 3), "float64")
    check_layer_gradients(layer, np.random.default_rng(7).normal(size=(2, 7, 6, 3)))


def test_conv_network_gradients_end_to_end():
    # the whole native plan (conv, activations, pooling, BN, flatten, dense), as fit runs it
    net = nncore.Network([nncore.Conv2D(3, 3, padding="same", activation="tanh"),
                          nncore.MaxPool2D(2),
                          nncore.Conv2D(4, (2, 3), strides=(1, 2), use_bias=False),
                          nncore.BatchNormalization(),
                          nncore.Tanh(), nncore.AvgPool2D(2, 1),
                          nncore.Flatten(), nncore.Dense(3)],
                         input_shape=(8, 12, 2), dtype="float64", seed=0).build()
    plan = Plan(native_ops(net.layers), net.dtype)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3, 8 * 12 * 2))
    r = rng.normal(size=(3, 3))
    loss = lambda: float(np.sum(r * plan.forward(x, True)))
    plan.forward(x, True)
    dx = plan.backward(r).copy()
    analytic = [dx] + [g.copy() for g in net.grads]
    numeric = [numerical_gradient(loss, x)] + [numerical_gradient(loss, p) for p in net.params]
    for a, b in zip(analytic, numeric):
        assert relative_error(a, b) < 1e-6


def test_fused_sgd_step_matches_gradients(dtype):
    # fit's fused SGD update equals params - lr * (gradients from backward)
    def network():
        return nncore.Network([nncore.Conv2D(4, 3, strides=2, padding="same"),
                               nncore.ReLU(), nncore.MaxPool2D(2, padding="same"),
                               nncore.BatchNormalization(),
                               nncore.Conv2D(3, 1), nncore.Flatten(), nncore.Dense(5)],
                              input_shape=(9, 9, 2), dtype=dtype, seed=3).build()
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6, 9, 9, 2)).astype(dtype)
    y = rng.normal(size=(6, 5)).astype(dtype)
    fused, reference = network(), network()
    fused.use("mse").fit(x, y, epochs=1, batch_size=6, learning_rate=0.1, shuffle=False,
                         verbose=0)
    plan = Plan(native_ops(reference.layers), reference.dtype)
    out = plan.forward(x.reshape(6, -1), True)
    plan.backward(nncore.losses.MSE().gradient(y, out))
    for p, g in zip(reference.params, reference.grads):
        p -= dtype.type(0.1) * g
    for a, b in zip(fused.params, reference.params):
        np.testing.assert_allclose(a, b, **TOL[dtype])
    for a, b in zip(fused.layers[3].state, reference.layers[3].state):
        np.testing.assert_allclose(a, b, **TOL[dtype])


# ------------------------------------------------------------------- errors

@pytest.mark.parametrize("layer,message", [
    (nncore.Conv2D(2, 7), r"layer 0 \(Conv2D\): window \(7, 7\) does not fit the input of "
                          r"shape \(None, 5, 6, 1\)"),
    (nncore.MaxPool2D(6), r"layer 0 \(MaxPool2D\): pool_size \(6, 6\) is larger than the "
                          r"input of shape \(None, 5, 6, 1\)"),
    (nncore.ConvLayer((6, 6, 1), 3, 2), r"layer 0 \(ConvLayer\): expected input of shape "
                                        r"\(None, 6, 6, 1\), received \(None, 5, 6, 1\)"),
    (nncore.Conv2D(2, 3), r"layer 0 \(Conv2D\): expected input of shape \(None, height, "
                          r"width, channels\), received \(None, 30\)"),
])
def test_impossible_shapes_name_the_layer(layer, message):
    shape = (30,) if "channels" in message else (5, 6, 1)
    with pytest.raises(ValueError, match=message):
        nncore.Network([layer], input_shape=shape).build()


def test_bad_hyper_parameters():
    with pytest.raises(ValueError, match=r"Conv2D: strides must be an int or a pair of ints >= 1, got 0"):
        nncore.Conv2D(2, 3, strides=0)
    with pytest.raises(ValueError, match=r"MaxPool2D: strides must be .* got \(2, -1\)"):
        nncore.MaxPool2D(2, strides=(2, -1))
    with pytest.raises(ValueError, match=r"Conv2D: filters must be a positive integer"):
        nncore.Conv2D(0, 3)
    with pytest.raises(ValueError, match=r"Conv2D: padding must be 'valid', 'same'"):
        nncore.Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match=r"AvgPool2D: padding \(2, 2\) must be smaller"):
        nncore.AvgPool2D(2, padding=2)


def test_wrong_input_shape_at_predict():
    net = nncore.Network([nncore.Conv2D(2, 3)], input_shape=(5, 5, 1)).build()
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2D\): expected input shape "
                                         r"\(None, 5, 5, 1\), received \(2, 5, 5, 2\)"):
        net.predict(np.zeros((2, 5, 5, 2)))


def test_summary_shows_shapes_and_parameter_counts():
    net = nncore.Network([nncore.Conv2D(8, 3, padding="same"), nncore.MaxPool2D(2),
                          nncore.Conv2D(4, 3, strides=2), nncore.GlobalAveragePooling2D(),
                          nncore.Dense(2)], input_shape=(12, 12, 3)).build()
    text = net.summary(print_fn=None)
    assert "(None, 12, 12, 8)" in text and "224" in text       # 3*3*3*8 + 8
    assert "(None, 6, 6, 8)" in text
    assert "(None, 2, 2, 4)" in text and "292" in text         # 3*3*8*4 + 4
    assert "(None, 4)" in text
    assert f"Total params: {224 + 292 + 10:,}" in text


def test_maxpool_routes_ties_to_one_element(dtype):
    # after ReLU many windows are all zeros: the gradient goes to the first maximum only
    rng = np.random.default_rng(10)
    x = np.maximum(rng.integers(-3, 2, size=(3, 6, 7, 4)), 0).astype(dtype)
    layer = built(nncore.MaxPool2D(2, padding="same"), x.shape[1:], dtype)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, pool_forward(x, "max", (2, 2), (2, 2), "same"))
    dy = rng.normal(size=y.shape).astype(dtype)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, pool_backward(x, dy, "max", (2, 2), (2, 2), "same"),
                               **TOL[dtype])
    np.testing.assert_allclose(dx.sum(), dy.sum(), rtol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_conv2d_with_activation(dtype, activation):
    # relu is fused into the convolution op, tanh runs as its own op
    rng = np.random.default_rng(11)
    layer = built(nncore.Conv2D(5, 3, 2, "same", activation=activation), (7, 8, 3), dtype)
    layer.bias[:] = rng.normal(size=5)
    x = rng.normal(size=(3, 7, 8, 3)).astype(dtype)
    z = conv_forward(x, layer.kernel, layer.bias, (2, 2), "same")
    f, f_prime = {"relu": (lambda v: np.maximum(v, 0), lambda v: (v > 0) * 1.0),
                  "tanh": (np.tanh, lambda v: 1 - np.tanh(v) ** 2)}[activation]
    np.testing.assert_allclose(layer.forward(x), f(z), **TOL[dtype])
    dy = rng.normal(size=z.shape).astype(dtype)
    dz = dy * f_prime(z)
    ref_dx, ref_dk, ref_db = conv_backward(x, layer.kernel, dz, (2, 2), "same")
    np.testing.assert_allclose(layer.backward(dy), ref_dx, **TOL[dtype])
    np.testing.assert_allclose(layer.grads[0], ref_dk, **TOL[dtype])
    np.testing.assert_allclose(layer.grads[1], ref_db, **TOL[dtype])


@pytest.mark.parametrize("filters,use_bias", [(6, True), (5, False)])
def test_conv2d_in_groups_of_samples_matches_reference(dtype, filters, use_bias):
    # a large receptive field makes groups of a few samples: forward and backward
    # go group by group and the kernel gradient adds the groups' products
    rng = np.random.default_rng(11)
    layer = built(nncore.Conv2D(filters, 3, padding="same", use_bias=use_bias),
                  (24, 24, 8), dtype)
    op = layer.native_ops()[0]
    assert 1 <= op.work_group < 7
    x = rng.normal(size=(7, 24, 24, 8)).astype(dtype)
    y = layer.forward(x)
    bias = layer.bias if use_bias else np.zeros(filters, dtype)
    np.testing.assert_allclose(y, conv_forward(x, layer.kernel, bias, (1, 1), "same"),
                               **TOL[np.dtype(dtype)])
    dy = rng.normal(size=y.shape).astype(dtype)
    dx = layer.backward(dy)
    ref_dx, ref_dk, ref_db = conv_backward(x, layer.kernel, dy, (1, 1), "same")
    np.testing.assert_allclose(dx, ref_dx, **TOL[np.dtype(dtype)])
    # sums over 4,032 positions: float32 rounding relative to the largest entry
    scale = dict(rtol=TOL[np.dtype(dtype)]["rtol"],
                 atol=max(TOL[np.dtype(dtype)]["atol"], 1e-6 * np.abs(ref_dk).max()))
    np.testing.assert_allclose(layer.grads[0], ref_dk, **scale)
    if use_bias:
        np.testing.assert_allclose(layer.grads[1], ref_db, **scale)


def test_conv2d_in_groups_of_samples_matches_pytorch_in_float64():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    layer = built(nncore.Conv2D(6, 3, strides=(1, 2), padding="same", activation="relu"),
                  (20, 22, 9), "float64")
    layer.bias[:] = rng.normal(size=6)
    assert layer.native_ops()[0].work_group < 5
    x = rng.normal(size=(5, 20, 22, 9))
    y = layer.forward(x)
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    tk = torch.tensor(layer.kernel.transpose(3, 2, 0, 1), requires_grad=True)
    tb = torch.tensor(layer.bias, requires_grad=True)
    ty = torch.relu(torch.nn.functional.conv2d(torch.nn.functional.pad(tx, (0, 1, 1, 1)),
                                               tk, tb, stride=(1, 2)))
    ty.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    close = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), **close)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), **close)
    np.testing.assert_allclose(layer.grads[0], tk.grad.numpy().transpose(2, 3, 1, 0), **close)
    np.testing.assert_allclose(layer.grads[1], tb.grad.numpy(), **close)
