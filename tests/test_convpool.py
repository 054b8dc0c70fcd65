"""The fused op for a convolution followed by max pooling (inference and
training): the same outputs as the two ops it replaces, through im2col +
GEMM and through Winograd's F(2x2, 3x3), in both dtypes."""
import numpy as np
import pytest

import nncore
from nncore._native.convpool import ConvPoolOp
from nncore._native.plan import Plan
from nncore._plans import fused_ops, native_ops

TOL = {np.dtype("float32"): dict(rtol=2e-5, atol=2e-5),
       np.dtype("float64"): dict(rtol=1e-12, atol=1e-12)}

# (input shape, Conv2D arguments, MaxPool2D arguments, Winograd expected)
CASES = [
    ((13, 13, 32), dict(filters=64, kernel_size=3, activation="relu"), dict(pool_size=2), True),
    ((12, 9, 8), dict(filters=5, kernel_size=3), dict(pool_size=2), True),
    ((9, 11, 9), dict(filters=7, kernel_size=3, padding="same", activation="relu"),
     dict(pool_size=2), True),
    ((8, 7, 10), dict(filters=3, kernel_size=3, padding=1, use_bias=False), dict(pool_size=2),
     True),
    ((28, 28, 1), dict(filters=32, kernel_size=3, activation="relu"), dict(pool_size=2), False),
    ((10, 9, 3), dict(filters=4, kernel_size=(2, 3), strides=(1, 2)), dict(pool_size=(2, 1)),
     False),
    ((11, 11, 16), dict(filters=6, kernel_size=3, strides=2, padding="same",
                        activation="relu"), dict(pool_size=3), False),
    ((7, 7, 12), dict(filters=4, kernel_size=1), dict(pool_size=2), False),
    # one input channel: im2col tap by tap when stride 1 and no padding
    ((12, 10, 1), dict(filters=5, kernel_size=(2, 3), use_bias=False), dict(pool_size=2), False),
    ((13, 14, 1), dict(filters=3, kernel_size=5, activation="relu"), dict(pool_size=(3, 2)),
     False),
    ((9, 9, 1), dict(filters=4, kernel_size=3, padding="same"), dict(pool_size=2), False),
    ((11, 11, 1), dict(filters=4, kernel_size=3, strides=2), dict(pool_size=2), False),
    # non-decreasing activations commute with the maximum: they fuse too
    ((10, 10, 8), dict(filters=6, kernel_size=3, activation="tanh"), dict(pool_size=2), True),
    ((9, 9, 3), dict(filters=5, kernel_size=3, activation=nncore.LeakyReLU(0.2)),
     dict(pool_size=2), False),
    ((9, 8, 1), dict(filters=3, kernel_size=2, activation="sigmoid"), dict(pool_size=2), False),
]


@pytest.mark.parametrize("shape, conv, pool, winograd", CASES)
def test_fused_conv_pool_matches_the_separate_ops(shape, conv, pool, winograd, dtype):
    net = nncore.Network([nncore.Conv2D(**conv), nncore.MaxPool2D(**pool), nncore.Flatten()],
                         dtype=dtype, seed=3).build(shape)
    rng = np.random.default_rng(4)
    if net.layers[0].bias is not None:
        net.layers[0].bias[...] = rng.normal(size=net.layers[0].bias.shape)
    fused = fused_ops(net.layers)
    assert isinstance(fused[0], ConvPoolOp) and fused[0].winograd == winograd
    x = rng.normal(size=(11,) + shape).astype(dtype)
    separate = Plan(native_ops(net.layers), dtype).forward(x.reshape(11, -1)).copy()
    for chunk in (1, 4, 11):
        out = np.empty_like(separate)
        Plan(fused, dtype).predict(x.reshape(11, -1), out, chunk)
        np.testing.assert_allclose(out, separate, **TOL[dtype])
    np.testing.assert_allclose(net.predict(x), separate, **TOL[dtype])


def test_one_channel_valid_stride_one_convolutions_take_im2col_by_tap():
    for shape, conv, pool, _ in CASES:
        net = nncore.Network([nncore.Conv2D(**conv), nncore.MaxPool2D(**pool)],
                             seed=0).build(shape)
        expected = (shape[-1] == 1 and conv.get("strides", 1) == 1
                    and conv.get("padding", "valid") == "valid")
        assert fused_ops(net.layers)[0].by_tap == expected, (shape, conv)


def test_only_a_conv_with_a_monotonic_activation_and_a_plain_max_pool_is_fused():
    def first_op(*layers):
        net = nncore.Network(list(layers), seed=0).build((8, 8, 4))
        return type(fused_ops(net.layers)[0]).__name__
    assert first_op(nncore.Conv2D(3, 3), nncore.MaxPool2D(2)) == "ConvPoolOp"
    assert first_op(nncore.Conv2D(3, 3, activation="tanh"), nncore.MaxPool2D(2)) == "ConvPoolOp"
    assert first_op(nncore.Conv2D(3, 3, activation="softmax"), nncore.MaxPool2D(2)) == "ConvOp"
    assert first_op(nncore.Conv2D(3, 3), nncore.Softmax(), nncore.MaxPool2D(2)) == "ConvOp"
    assert first_op(nncore.Conv2D(3, 3), nncore.MaxPool2D(2, strides=1)) == "ConvOp"
    assert first_op(nncore.Conv2D(3, 3), nncore.MaxPool2D(2, padding="same")) == "ConvOp"
    assert first_op(nncore.Conv2D(3, 3), nncore.AvgPool2D(2)) == "ConvOp"


def test_fused_predict_follows_weight_changes():
    # the transformed Winograd kernel is derived from the live weights on every call
    x = np.random.default_rng(5).normal(size=(3, 6, 6, 8)).astype(np.float32)
    net = nncore.Network([nncore.Conv2D(4, 3), nncore.MaxPool2D(2)], seed=0).build((6, 6, 8))
    before = net.predict(x)
    weights = net.get_weights()
    net.set_weights([w * 2 for w in weights])
    np.testing.assert_allclose(net.predict(x), 2 * before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape, conv, pool, winograd", CASES)
def test_fused_backward_matches_the_separate_ops(shape, conv, pool, winograd, dtype):
    # a training forward and backward through the fused op give the same
    # output, input gradient and parameter gradients as Conv2D then MaxPool2D
    def run(ops, net, x, dy):
        plan = Plan(ops, dtype)
        out = plan.forward(x, training=True).copy()
        dx = plan.backward(dy).copy()
        return [out, dx] + [g.copy() for g in net.layers[0].grads]

    net = nncore.Network([nncore.Conv2D(**conv), nncore.MaxPool2D(**pool), nncore.Flatten()],
                         dtype=dtype, seed=6).build(shape)
    rng = np.random.default_rng(7)
    if net.layers[0].bias is not None:
        net.layers[0].bias[...] = rng.normal(size=net.layers[0].bias.shape)
    x = rng.normal(size=(9, int(np.prod(shape)))).astype(dtype)
    dy = rng.normal(size=(9, int(np.prod(net.output_shape)))).astype(dtype)
    separate = run(native_ops(net.layers), net, x, dy)
    fused = run(fused_ops(net.layers), net, x, dy)
    for a, b in zip(fused, separate):
        # gradients are sums over many positions, added in another order
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=TOL[dtype]["rtol"],
                                   atol=TOL[dtype]["atol"] * scale)


class PythonIdentity(nncore.Layer):
    """A layer written in Python: its network trains through the per-layer loop."""

    def forward(self, x, training=False):
        if not self.built:
            self.build(np.shape(x)[1:])
        return x

    def backward(self, dy):
        return dy


@pytest.mark.parametrize("shape", [(10, 10, 3), (11, 10, 1)])
def test_training_through_the_fused_op_learns_like_the_separate_ops(shape):
    # the same seeded CNN trained by a plan with the fused op and by the
    # per-layer Python loop (which runs the layers' separate ops) ends with
    # the same weights; one input channel trains through im2col by tap
    x = np.random.default_rng(8).normal(size=(64,) + shape)
    y = np.random.default_rng(9).integers(0, 4, 64)

    def trained(python_path):
        layers = [nncore.Conv2D(8, 3, activation="relu"), nncore.MaxPool2D(2),
                  nncore.Flatten(), nncore.Dense(4)]
        net = nncore.Network(layers + ([PythonIdentity()] if python_path else []),
                             dtype="float64", seed=10)
        net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                optimizer="adam")
        net.fit(x, y, epochs=3, batch_size=16, verbose=0)
        assert (net.plans.training_plan(net, nncore._training.native_loss(net),
                                        net.optimizer.updater) is None) == python_path
        return net.get_weights()

    for a, b in zip(trained(False), trained(True)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
