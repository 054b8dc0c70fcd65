"""The lowering pass: every way of writing a network runs the same ops, the
fused ops compute what the separate ones do, batch normalization folds into
the op before it at inference, and the plan can be printed."""
import numpy as np
import pytest

import nncore
from nncore import activations as article
from nncore._native.batchnorm import BatchNormOp
from nncore._native.dropout import DropoutOp
from nncore._native.plan import Plan
from nncore._native.reshape import ReshapeOp
from nncore._plans import fused_ops, native_ops
from reference import numeric_gradient, relative_error

# the relative tolerance of folded batch normalization against the unfolded ops
FOLD_TOL = {np.dtype("float32"): 1e-6, np.dtype("float64"): 1e-12}


def relu_spellings():
    """ReLU written every way nncore accepts, as a layer after another."""
    return [lambda: nncore.ReLU(), lambda: nncore.Activation("relu"),
            lambda: nncore.ActivationLayer(article.relu, article.relu_prime)]


def cnn(spelling, dtype="float32"):
    """The README's CNN, with its activations as `activation=` (spelling None)
    or as separate layers made by `spelling`."""
    def conv(filters):
        if spelling is None:
            return [nncore.Conv2D(filters, 3, activation="relu")]
        return [nncore.Conv2D(filters, 3), spelling()]

    def dense(units):
        if spelling is None:
            return [nncore.Dense(units, activation="relu")]
        return [nncore.Dense(units), spelling()]
    layers = (conv(8) + [nncore.MaxPool2D(2)] + conv(16) + [nncore.MaxPool2D(2),
              nncore.Flatten()] + dense(32) + [nncore.Dense(10)])
    return nncore.Network(layers, input_shape=(16, 16, 1), dtype=dtype, seed=0)


def op_kinds(ops):
    return [type(op).__name__ for op in ops]


@pytest.mark.parametrize("training", [False, True])
def test_every_spelling_lowers_to_the_ops_of_the_activation_argument(training):
    expected = op_kinds(fused_ops(cnn(None).layers, training))
    assert expected[:2] == ["ConvPoolOp", "ConvPoolOp"]
    for spelling in relu_spellings():
        assert op_kinds(fused_ops(cnn(spelling).layers, training)) == expected


def test_every_spelling_predicts_and_trains_bit_identically(dtype):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 16, 16, 1)).astype(dtype)
    y = rng.integers(0, 10, 40)
    results = []
    for spelling in [None] + relu_spellings():
        net = cnn(spelling, dtype)
        net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                optimizer="adam")
        before = net.predict(x)
        net.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
        results.append([before, net.predict(x)] + net.get_weights())
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def separate_and_fused(layers, dtype, x, dy, training=True):
    """(output, input gradient, parameter gradients) through the layers'
    own ops one by one and through the lowered ops."""
    def run(ops):
        plan = Plan(ops, dtype)
        out = plan.forward(x, training=training).copy()
        if not training:
            return [out]
        dx = plan.backward(dy.copy()).copy()
        return [out, dx] + [g.copy() for layer in layers for g in layer.grads]
    return run(native_ops(layers)), run(fused_ops(layers, training))


@pytest.mark.parametrize("activation", [nncore.Tanh, nncore.Sigmoid, nncore.ReLU,
                                        lambda: nncore.LeakyReLU(0.3),
                                        lambda: nncore.Activation("identity")])
def test_an_activation_joins_the_epilogue_with_the_same_bits(activation, dtype):
    # Dense and Conv2D with the activation fused compute exactly what the two
    # ops compute (the first Dense keeps its own activation op in training)
    layers = [nncore.Dense(12), activation(), nncore.Dense(6), activation(),
              nncore.Dense(3)]
    net = nncore.Network(layers, input_shape=(5,), dtype=dtype, seed=2)
    fused = fused_ops(net.layers, training=False)
    assert op_kinds(fused) == ["DenseOp"] * 3
    rng = np.random.default_rng(3)
    for layer in net.layers[::2]:
        layer.b[...] = rng.normal(size=layer.b.shape)
    x = rng.normal(size=(7, 5)).astype(dtype)
    dy = rng.normal(size=(7, 3)).astype(dtype)
    for training in (False, True):
        separate, joined = separate_and_fused(net.layers, dtype, x, dy, training)
        for a, b in zip(separate, joined):
            assert np.array_equal(a, b)

    conv = nncore.Network([nncore.Conv2D(4, 3), activation(), nncore.Conv2D(3, 2),
                           activation(), nncore.Flatten()],
                          input_shape=(7, 6, 2), dtype=dtype, seed=4)
    assert op_kinds(fused_ops(conv.layers, True)) == ["ConvOp", "ConvOp", "ReshapeOp"]
    x = rng.normal(size=(5, 7 * 6 * 2)).astype(dtype)
    dy = rng.normal(size=(5, 4 * 3 * 3)).astype(dtype)
    separate, joined = separate_and_fused(conv.layers, dtype, x, dy)
    for a, b in zip(separate, joined):
        assert np.array_equal(a, b)


def test_fused_training_gradients_check_in_float64():
    # the training plan's gradients, with activations in the epilogues and
    # a fused conv+pool, against central finite differences
    layers = [nncore.Conv2D(3, 3), nncore.Tanh(), nncore.MaxPool2D(2), nncore.Flatten(),
              nncore.Dense(5), nncore.LeakyReLU(0.2), nncore.Dense(4), nncore.Sigmoid(),
              nncore.Dense(2)]
    net = nncore.Network(layers, input_shape=(8, 8, 2), dtype="float64", seed=5)
    ops = fused_ops(net.layers, training=True)
    assert op_kinds(ops) == ["ConvPoolOp", "ReshapeOp", "DenseOp", "DenseOp", "DenseOp"]
    rng = np.random.default_rng(6)
    for layer in (net.layers[0], net.layers[4], net.layers[6], net.layers[8]):
        layer.params[1][...] = rng.normal(size=layer.params[1].shape) * 0.1
    x = rng.normal(size=(3, 8 * 8 * 2))
    weights = rng.normal(size=(3, 2))
    plan = Plan(ops, "float64")

    def f():
        return float(np.sum(plan.forward(x, training=True) * weights))
    plan.forward(x, training=True)
    dx = plan.backward(weights.copy()).copy()
    assert relative_error(dx, numeric_gradient(f, x)) < 1e-6
    for layer in net.layers:
        for param, grad in zip(layer.params, layer.grads):
            analytic = grad.copy()
            assert relative_error(analytic, numeric_gradient(f, param)) < 1e-6


def with_statistics(net, rng):
    """Give every BatchNormalization of net moving statistics and an affine map
    far from the identity, so that folding has something to do."""
    for layer in net.layers:
        if isinstance(layer, nncore.BatchNormalization):
            c = layer.gamma.size
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(size=c),
                               rng.normal(size=c), rng.uniform(0.2, 3, c)])
    return net


def assert_relative(a, b, dtype):
    scale = np.abs(b).max()
    assert np.abs(a - b).max() <= FOLD_TOL[np.dtype(dtype)] * scale, \
        (np.abs(a - b).max(), scale)


@pytest.mark.parametrize("use_bias", [True, False])
def test_batch_normalization_folds_into_dense_and_conv_at_inference(use_bias, dtype):
    rng = np.random.default_rng(7)
    layers = [nncore.Conv2D(6, 3, use_bias=use_bias), nncore.BatchNormalization(),
              nncore.ReLU(), nncore.MaxPool2D(2), nncore.Dropout(0.4), nncore.Flatten(),
              nncore.Dense(9, use_bias=use_bias), nncore.BatchNormalization(),
              nncore.Tanh(), nncore.Dense(4)]
    net = with_statistics(nncore.Network(layers, input_shape=(10, 10, 3), dtype=dtype,
                                         seed=8), rng)
    ops = fused_ops(net.layers, training=False)
    assert op_kinds(ops) == ["ConvPoolOp", "DenseOp", "DenseOp"]
    training_kinds = op_kinds(fused_ops(net.layers, training=True))
    assert {"BatchNormOp", "DropoutOp"} <= set(training_kinds)
    x = rng.normal(size=(13, 10, 10, 3)).astype(dtype)
    reference = Plan(native_ops(net.layers), dtype).forward(x.reshape(13, -1)).copy()
    assert_relative(net.predict(x), reference, dtype)
    # the folded copy follows the weights and statistics when they change
    with_statistics(net, rng)
    net.layers[0].kernel[...] *= -1.5
    reference = Plan(native_ops(net.layers), dtype).forward(x.reshape(13, -1)).copy()
    assert_relative(net.predict(x), reference, dtype)


def test_batch_normalization_after_an_activation_is_not_folded():
    layers = [nncore.Dense(4, activation="relu"), nncore.BatchNormalization(),
              nncore.Dense(3), nncore.ReLU(), nncore.BatchNormalization()]
    net = nncore.Network(layers, input_shape=(5,), seed=0)
    kinds = op_kinds(fused_ops(net.layers, training=False))
    assert kinds == ["DenseOp", "BatchNormOp", "DenseOp", "BatchNormOp"]


def test_dropout_and_flatten_disappear_at_inference_only():
    layers = [nncore.Flatten(), nncore.Dropout(0.5), nncore.Dense(3)]
    net = nncore.Network(layers, input_shape=(2, 3), seed=0)
    assert op_kinds(fused_ops(net.layers, training=False)) == ["DenseOp"]
    assert op_kinds(fused_ops(net.layers, training=True)) == ["ReshapeOp", "DropoutOp",
                                                              "DenseOp"]
    # a network of views only still runs: one copy
    only = nncore.Network([nncore.Flatten(), nncore.Dropout(0.1)], input_shape=(2, 2))
    assert op_kinds(fused_ops(only.layers, training=False)) == ["ReshapeOp"]
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    assert np.array_equal(only.predict(x), x.reshape(2, 4))


def test_a_python_activation_is_not_fused():
    layers = [nncore.Dense(3), nncore.ActivationLayer(np.tanh, lambda v: 1 - np.tanh(v) ** 2)]
    net = nncore.Network(layers, input_shape=(4,), seed=0)
    assert fused_ops(net.layers) is None


def test_a_dense_subclass_with_its_own_ops_is_left_alone():
    class Scaled(nncore.Dense):
        def make_ops(self):
            return super().make_ops()
    layers = [Scaled(3), nncore.ReLU()]
    net = nncore.Network(layers, input_shape=(4,), seed=0)
    assert op_kinds(fused_ops(net.layers)) == ["DenseOp", "ActivationOp"]


README_CNN_PLAN = """\
Plan for inference:
  conv2d_0 + max_pool2d_1 -> conv+pool, im2col tap by tap + GEMM, epilogue max + bias + relu
  conv2d_2 + max_pool2d_3 -> conv+pool, Winograd F(2x2,3x3), epilogue max + bias + relu \
(im2col + GEMM for calls of under 16 pool windows)
  flatten_4               -> view, no op
  dense_5                 -> dense, GEMM, epilogue bias + relu
  dropout_6               -> no op at inference
  dense_7                 -> dense, GEMM, epilogue bias
Plan for training:
  conv2d_0 + max_pool2d_1 -> conv+pool, im2col tap by tap + GEMM, epilogue max + bias + relu
  conv2d_2 + max_pool2d_3 -> conv+pool, im2col + GEMM, epilogue max + bias + relu
  flatten_4               -> copy
  dense_5                 -> dense, GEMM, epilogue bias + relu
  dropout_6               -> dropout
  dense_7                 -> dense, GEMM, epilogue bias"""

README_MLP_PLAN = """\
Plan for inference:
  dense_0 -> dense, GEMM, epilogue bias + relu
  dense_1 -> dense, GEMM, epilogue bias
Plan for training:
  dense_0 -> dense, GEMM, epilogue bias; relu as an op of its own (the first dense op of a \
training plan: per-sample SGD defers its updates)
  dense_1 -> dense, GEMM, epilogue bias"""


def readme_cnn(separate: bool):
    def conv(filters):
        return ([nncore.Conv2D(filters, 3), nncore.ReLU()] if separate
                else [nncore.Conv2D(filters, 3, activation="relu")])
    dense = ([nncore.Dense(128), nncore.Activation("relu")] if separate
             else [nncore.Dense(128, activation="relu")])
    return nncore.Network(conv(32) + [nncore.MaxPool2D(2)] + conv(64)
                          + [nncore.MaxPool2D(2), nncore.Flatten()] + dense
                          + [nncore.Dropout(0.5), nncore.Dense(10)],
                          input_shape=(28, 28, 1), seed=0)


def test_summary_prints_the_plans_of_the_readme_networks():
    text = readme_cnn(False).summary(print_fn=None, plan=True)
    assert text.endswith("\n\n" + README_CNN_PLAN)
    mlp = nncore.Network([nncore.Dense(128, activation="relu"), nncore.Dense(10)],
                         input_shape=(64,), seed=0)
    assert mlp.summary(print_fn=None, plan=True).endswith("\n\n" + README_MLP_PLAN)


def test_summary_shows_the_separate_spelling_running_the_same_ops():
    def steps(text):
        plan = text[text.index("Plan for inference"):]
        return [line.split(" -> ") for line in plan.splitlines() if " -> " in line]
    separate = steps(readme_cnn(True).summary(print_fn=None, plan=True))
    joined = steps(README_CNN_PLAN)
    assert [how for _, how in separate] == [how for _, how in joined]
    assert [layers.strip() for layers, _ in separate[:6]] == [
        "conv2d_0 + relu_1 + max_pool2d_2", "conv2d_3 + relu_4 + max_pool2d_5", "flatten_6",
        "dense_7 + activation_8", "dropout_9", "dense_10"]


def test_summary_of_a_network_before_it_is_built_and_with_python_layers():
    net = nncore.Network([nncore.Dense(3)])
    assert net.summary(print_fn=None, plan=True).endswith(
        "Plan: made when the network is built (fit, predict or build(input_shape))")
    layers = [nncore.Dense(3), nncore.ActivationLayer(np.tanh, lambda v: 1 - np.tanh(v) ** 2)]
    text = nncore.Network(layers, input_shape=(4,)).summary(print_fn=None, plan=True)
    assert "the layers run one by one in Python" in text


def test_an_activation_subclass_with_its_own_ops_is_not_fused():
    class Doubled(nncore.Activation):
        def __init__(self):
            super().__init__("relu")

        def make_ops(self):
            return super().make_ops()
    net = nncore.Network([nncore.Dense(3), Doubled()], input_shape=(4,), seed=0)
    assert op_kinds(fused_ops(net.layers)) == ["DenseOp", "ActivationOp"]
