"""Embedding, Conv1D, the 1-D pools and LayerNormalization against PyTorch
(float64, weights copied across, forward and backward to 1e-12 relative),
against NumPy in float32, and by finite differences."""
import numpy as np
import pytest

import nncore
from reference import numeric_gradient, relative_error
from test_kernels import build

torch = pytest.importorskip("torch")
F = torch.nn.functional
EXACT = 1e-12


def run(layer, x, dy):
    """(y, dx, grads) of the layer's native forward and backward."""
    y = layer.forward(x)
    dx = layer.backward(dy)
    return y, dx, [g.copy() for g in layer.grads]


def torch_run(function, x, dy, params, x_grad=True):
    """(y, dx, grads) of a torch function of x and params, backward from dy."""
    tx = torch.tensor(x, requires_grad=x_grad)
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    ty = function(tx, *tp)
    ty.backward(torch.tensor(dy))
    return (ty.detach().numpy(), tx.grad.numpy() if x_grad else None,
            [p.grad.numpy() for p in tp])


def assert_same(ours, theirs, limit=EXACT):
    for a, b in zip(ours, theirs):
        if b is not None:
            assert a.shape == b.shape
            assert relative_error(a, b) < limit


# ------------------------------------------------------------------ Embedding
def test_embedding_matches_torch_and_scatters_into_used_rows():
    rng = np.random.default_rng(0)
    layer = build(nncore.Embedding(11, 6), (7,), np.float64)
    x = rng.integers(0, 8, size=(5, 7))          # rows 8..10 unused
    x[0, :3] = 2                                 # a row used several times
    dy = rng.normal(size=(5, 7, 6))
    y, _, (g,) = run(layer, x, dy)
    ty, _, (tg,) = torch_run(lambda i, w: F.embedding(i, w), x, dy, [layer.embeddings],
                             x_grad=False)
    assert_same([y, g], [ty, tg])
    assert not g[8:].any()


def test_embedding_float32_matches_numpy():
    rng = np.random.default_rng(1)
    layer = build(nncore.Embedding(20, 4), (9,), np.float32)
    x = rng.integers(0, 20, size=(3, 9))
    np.testing.assert_array_equal(layer.forward(x), layer.embeddings[x])
    dy = rng.normal(size=(3, 9, 4)).astype(np.float32)
    layer.backward(dy)
    expected = np.zeros((20, 4))
    np.add.at(expected, x.reshape(-1), dy.reshape(-1, 4).astype(np.float64))
    np.testing.assert_allclose(layer.grads[0], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bad,message", [([[0, 5]], r"\[0, 5\], outside \[0, 5\)"),
                                          ([[-1, 2]], "outside"),
                                          ([[0.5, 2]], "integer indices")])
def test_embedding_rejects_bad_indices_everywhere(bad, message):
    net = nncore.Network([nncore.Embedding(5, 3), nncore.Flatten(), nncore.Dense(2)],
                         input_shape=(2,), seed=0).build()
    net.use("mse")
    bad = np.array(bad, np.float32)
    with pytest.raises(ValueError, match=r"layer 0 \(Embedding\).*" + message):
        net.predict(bad)
    with pytest.raises(ValueError, match=message):
        net.fit(bad, np.zeros((1, 2)), verbose=0)
    with pytest.raises(ValueError, match=message):
        nncore.InferenceSession(net).predict(bad)     # an array that skips conversion
    with pytest.raises(ValueError, match=message):
        net.layers[0].forward(bad)


def test_embedding_must_come_first():
    with pytest.raises(ValueError, match=r"layer 1 \(Embedding\).*first layer"):
        nncore.Network([nncore.Dense(4), nncore.Embedding(5, 3)], input_shape=(4,))


def test_float32_embedding_refuses_more_rows_than_float32_counts_exactly():
    with pytest.raises(ValueError, match="float64"):
        build(nncore.Embedding((1 << 24) + 1, 1), (2,), np.float32)


# ------------------------------------------------------------------ Conv1D
def torch_conv1d(layer, steps):
    """The torch function computing `layer` (built on `steps` steps)."""
    out, left = nncore.layers.sequence.window_1d(layer, steps, layer.kernel_size,
                                                 layer.strides, layer.dilation_rate,
                                                 layer.padding)
    span = (layer.kernel_size - 1) * layer.dilation_rate + 1
    right = max(0, (out - 1) * layer.strides + span - steps - left)
    act = {None: lambda v: v, "tanh": torch.tanh, "relu": torch.relu}[layer.activation]

    def conv(x, kernel, bias):
        x = F.pad(x.transpose(1, 2), (left, right))
        y = F.conv1d(x, kernel.permute(2, 1, 0), bias, stride=layer.strides,
                     dilation=layer.dilation_rate)
        return act(y.transpose(1, 2))
    return conv


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("strides,dilation", [(1, 1), (2, 1), (1, 3), (3, 2)])
@pytest.mark.parametrize("activation", [None, "tanh", "relu"])
def test_conv1d_matches_torch(padding, strides, dilation, activation):
    rng = np.random.default_rng(2)
    steps, channels = 13, 3
    layer = build(nncore.Conv1D(4, 3, strides=strides, padding=padding,
                                dilation_rate=dilation, activation=activation),
                  (steps, channels), np.float64)
    layer.bias[:] = rng.normal(size=4)
    x = rng.normal(size=(5, steps, channels))
    dy = rng.normal(size=(5,) + layer.output_shape)
    ours = run(layer, x, dy)
    theirs = torch_run(torch_conv1d(layer, steps), x, dy, [layer.kernel, layer.bias])
    assert ours[0].shape == theirs[0].shape
    assert_same([ours[0], ours[1]] + ours[2], [theirs[0], theirs[1]] + theirs[2])


def test_conv1d_float32_matches_float64_and_finite_differences():
    rng = np.random.default_rng(3)
    layer = build(nncore.Conv1D(2, 2, padding="causal", dilation_rate=2, use_bias=False),
                  (6, 2), np.float64)
    x = rng.normal(size=(2, 6, 2))
    weights = rng.normal(size=(2, 6, 2))
    layer.forward(x)
    dx = layer.backward(weights)
    gk = layer.grads[0].copy()
    f = lambda: float(np.sum(layer.forward(x) * weights))
    assert relative_error(dx, numeric_gradient(f, x)) < 1e-6
    assert relative_error(gk, numeric_gradient(f, layer.kernel)) < 1e-6
    single = build(nncore.Conv1D(2, 2, padding="causal", dilation_rate=2, use_bias=False),
                   (6, 2), np.float32)
    single.kernel[:] = layer.kernel
    np.testing.assert_allclose(single.forward(x.astype(np.float32)), layer.forward(x),
                               rtol=1e-5, atol=1e-6)


def test_causal_conv1d_output_ignores_the_future():
    rng = np.random.default_rng(4)
    layer = build(nncore.Conv1D(3, 4, padding="causal", dilation_rate=2), (12, 2),
                  np.float64)
    x = rng.normal(size=(1, 12, 2))
    changed = x.copy()
    changed[0, 7:] += 1
    np.testing.assert_array_equal(layer.forward(x)[0, :7], layer.forward(changed)[0, :7])
    assert not np.array_equal(layer.forward(x)[0, 7:], layer.forward(changed)[0, 7:])


def test_conv1d_geometry_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"layer 0 \(Conv1D\).*does not fit"):
        nncore.Network([nncore.Conv1D(2, 4, dilation_rate=3)], input_shape=(6, 1)).build()
    with pytest.raises(ValueError, match="Conv1D: padding"):
        nncore.Conv1D(2, 3, padding="full")
    with pytest.raises(ValueError, match=r"\(None, steps, features\)"):
        nncore.Network([nncore.Conv1D(2, 3)], input_shape=(6,)).build()


# ------------------------------------------------------------------ pools
def numpy_pool_1d(x, size, stride, pad, out, kind):
    steps = x.shape[1]
    result = np.empty((x.shape[0], out, x.shape[2]))
    for t in range(out):
        lo, hi = max(t * stride - pad, 0), min(t * stride - pad + size, steps)
        window = x[:, lo:hi]
        result[:, t] = window.max(axis=1) if kind == "max" else window.mean(axis=1)
    return result


@pytest.mark.parametrize("cls,kind", [(nncore.MaxPool1D, "max"),
                                      (nncore.AveragePooling1D, "avg")])
@pytest.mark.parametrize("size,strides", [(2, None), (3, 1), (3, 2)])
def test_pool1d_matches_torch(cls, kind, size, strides):
    rng = np.random.default_rng(5)
    layer = build(cls(size, strides), (11, 3), np.float64)
    x = rng.normal(size=(4, 11, 3))
    dy = rng.normal(size=(4,) + layer.output_shape)
    pool = F.max_pool1d if kind == "max" else F.avg_pool1d
    stride = strides or size
    theirs = torch_run(lambda v: pool(v.transpose(1, 2), size, stride).transpose(1, 2),
                       x, dy, [])
    assert_same(run(layer, x, dy)[:2], theirs[:2])


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool1d_same_padding_matches_numpy(dtype, kind):
    rng = np.random.default_rng(6)
    cls = nncore.MaxPool1D if kind == "max" else nncore.AveragePooling1D
    layer = build(cls(3, 2, padding="same"), (10, 2), dtype)
    x = rng.normal(size=(3, 10, 2)).astype(dtype)
    expected = numpy_pool_1d(x.astype(np.float64), 3, 2, 0, 5, kind)
    assert layer.output_shape == (5, 2)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls,reduce", [(nncore.GlobalMaxPooling1D, torch.amax),
                                        (nncore.GlobalAveragePooling1D, torch.mean)])
def test_global_pool1d_matches_torch(cls, reduce):
    rng = np.random.default_rng(7)
    layer = build(cls(), (9, 4), np.float64)
    x = rng.normal(size=(3, 9, 4))
    dy = rng.normal(size=(3, 4))
    theirs = torch_run(lambda v: reduce(v, dim=1), x, dy, [])
    assert_same(run(layer, x, dy)[:2], theirs[:2])


# ------------------------------------------------------------------ LayerNormalization
@pytest.mark.parametrize("shape", [(6,), (5, 6)])
def test_layer_normalization_matches_torch(shape):
    rng = np.random.default_rng(8)
    layer = build(nncore.LayerNormalization(epsilon=1e-5), shape, np.float64)
    layer.gamma[:] = rng.normal(size=6)
    layer.beta[:] = rng.normal(size=6)
    x = rng.normal(size=(4,) + shape) * 3 + 1
    dy = rng.normal(size=x.shape)
    theirs = torch_run(lambda v, g, b: F.layer_norm(v, (6,), g, b, 1e-5), x, dy,
                       [layer.gamma, layer.beta])
    ours = run(layer, x, dy)
    assert_same([ours[0], ours[1]] + ours[2], [theirs[0], theirs[1]] + theirs[2])


def test_layer_normalization_float32_and_finite_differences():
    rng = np.random.default_rng(9)
    layer = build(nncore.LayerNormalization(), (3, 5), np.float64)
    layer.gamma[:] = rng.normal(size=5)
    x = rng.normal(size=(2, 3, 5))
    weights = rng.normal(size=x.shape)
    layer.forward(x)
    dx = layer.backward(weights)
    gg = layer.grads[0].copy()
    f = lambda: float(np.sum(layer.forward(x) * weights))
    assert relative_error(dx, numeric_gradient(f, x)) < 1e-6
    assert relative_error(gg, numeric_gradient(f, layer.gamma)) < 1e-6
    single = build(nncore.LayerNormalization(), (3, 5), np.float32)
    single.gamma[:] = layer.gamma
    np.testing.assert_allclose(single.forward(x.astype(np.float32)), layer.forward(x),
                               rtol=1e-5, atol=1e-5)
