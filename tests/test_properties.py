"""Property-based tests (hypothesis): random valid stacks of layers and input
shapes give finite outputs and gradients of the documented shapes; float64
gradients agree with central finite differences; saving round-trips; mutated
model files never raise anything but ModelFormatError."""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import nncore  # noqa: E402
from nncore import ModelFormatError, saving  # noqa: E402
from nncore.network import loads  # noqa: E402

# derandomized (the same examples every run) and no example database, so the
# suite is deterministic and writes nothing into the source tree
SETTINGS = dict(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SMOOTH = ["tanh", "sigmoid", "softmax", "identity"]
ALL = SMOOTH + ["relu", "leaky_relu"]


def layer_strategy(activations):
    dense = st.builds(lambda units, act: ("Dense", units, act),
                      st.integers(1, 5), st.sampled_from(activations + [None]))
    activation = st.builds(lambda act, alpha: ("Activation", act, alpha),
                           st.sampled_from(activations), st.floats(0.0, 0.5))
    return st.one_of(dense, activation)


def make_layer(spec):
    kind, a, b = spec
    if kind == "Dense":
        return nncore.Dense(a, activation=b)
    if a == "leaky_relu":
        return nncore.LeakyReLU(b)
    return nncore.Activation(a)


def expected_shape(input_shape, specs):
    shape = input_shape
    for kind, a, _ in specs:
        if kind == "Dense":
            shape = shape[:-1] + (a,)
    return shape


def network(specs, input_shape, dtype, seed=0):
    net = nncore.Network([make_layer(s) for s in specs], dtype=dtype, seed=seed)
    net.build(input_shape)
    return net


stacks = st.lists(layer_strategy(ALL), min_size=1, max_size=4)
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


@settings(**SETTINGS)
@given(specs=stacks, input_shape=shapes, n=st.integers(1, 4),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**32 - 1))
def test_random_stacks_give_finite_outputs_and_gradients_of_documented_shapes(
        specs, input_shape, n, dtype, seed):
    net = network(specs, input_shape, dtype)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + input_shape)
    out_shape = expected_shape(input_shape, specs)
    y = net.predict(x)
    assert net.output_shape == out_shape
    assert y.shape == (n,) + out_shape and y.dtype == dtype and np.isfinite(y).all()
    # the layer-by-layer Python path runs the same kernels
    out = x
    for layer in net.layers:
        out = layer.forward(out, training=True)
    assert np.allclose(out, y, rtol=1e-5, atol=1e-6)
    grad = rng.normal(size=out.shape)
    for layer in reversed(net.layers):
        grad = layer.backward(grad)
        assert all(g.shape == p.shape and np.isfinite(g).all()
                   for p, g in zip(layer.params, layer.grads))
    assert grad.shape == x.shape and np.isfinite(grad).all()


def forward(net, x):
    for layer in net.layers:
        x = layer.forward(x, training=True)
    return x


def relative_error(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)


@settings(**SETTINGS)
@given(specs=st.lists(layer_strategy(SMOOTH), min_size=1, max_size=3),
       input_shape=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
       n=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_gradients_agree_with_finite_differences(specs, input_shape, n, seed):
    net = network(specs, input_shape, "float64", seed=seed % 1000)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + input_shape)
    r = rng.normal(size=(n,) + expected_shape(input_shape, specs))

    def objective(inputs):
        return float(np.sum(forward(net, inputs) * r))

    objective(x)
    grad = r
    for layer in reversed(net.layers):
        grad = layer.backward(grad)
    analytic = [g.copy() for g in net.grads] + [grad]
    eps = 1e-6
    numeric = []
    for p in net.params + [x]:
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            keep = p[i]
            p[i] = keep + eps
            up = objective(x)
            p[i] = keep - eps
            down = objective(x)
            p[i] = keep
            g[i] = (up - down) / (2 * eps)
        numeric.append(g)
    for a, b in zip(analytic, numeric):
        assert relative_error(a, b) < 1e-6


@settings(**SETTINGS)
@given(specs=stacks, input_shape=shapes, dtype=st.sampled_from(["float32", "float64"]),
       seed=st.integers(0, 2**32 - 1))
def test_saving_round_trips_any_stack(specs, input_shape, dtype, seed):
    net = network(specs, input_shape, dtype, seed=seed)
    loaded = loads(saving.dumps(net))
    x = np.random.default_rng(seed).normal(size=(3,) + input_shape)
    assert loaded.get_config() == net.get_config()
    assert np.array_equal(loaded.predict(x), net.predict(x))


GOOD = None


def good_file():
    global GOOD
    if GOOD is None:
        net = nncore.Network([nncore.Dense(3, activation="relu"), nncore.Dense(2)], seed=0)
        net.use("mse", optimizer="sgd").build((2,))
        GOOD = (net, saving.dumps(net))
    return GOOD


edits = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "delete"]),
                           st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                 min_size=1, max_size=4)


@settings(**dict(SETTINGS, max_examples=300))
@given(edits=edits)
def test_mutated_model_files_raise_model_format_error_or_load_unchanged(edits):
    net, good = good_file()
    data = bytearray(good)
    for kind, where, value in edits:
        at = int(where * len(data)) if data else 0
        if kind == "flip" and data:
            data[at] ^= value
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = bytes([value]) * value
        elif kind == "delete":
            del data[at:at + value]
    try:
        loaded = loads(bytes(data))
    except ModelFormatError:
        return
    assert loaded.get_config() == net.get_config()
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), net.get_weights()))
