"""Weight regularizers: the native penalty kernel against NumPy, a training
step against a NumPy reference (native and Python paths), saving, bad
arguments, and NNClassifier's alpha against scikit-learn's formula."""
import warnings

import numpy as np
import pytest

import nncore
from nncore import regularizers
from nncore._native.regularize import PenaltyOp


@pytest.mark.parametrize("l1,l2", [(0.0, 0.3), (0.2, 0.0), (0.05, 0.7)])
def test_penalty_kernel_matches_numpy(dtype, l1, l2):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(7, 5)).astype(dtype)
    w[0, 0] = 0                         # sign(0) = 0: no L1 gradient
    grad = rng.normal(size=w.shape).astype(dtype)
    before = grad.copy()
    op = PenaltyOp(w, grad, l1, l2)
    expected = l1 * np.abs(w.astype(np.float64)).sum() + l2 * np.square(w.astype(np.float64)).sum()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(op.value(), expected, rtol=tol)
    np.testing.assert_array_equal(grad, before)          # value() leaves grad alone
    np.testing.assert_allclose(op.apply(), expected, rtol=tol)
    np.testing.assert_allclose(grad, before + l1 * np.sign(w) + 2 * l2 * w, rtol=tol, atol=tol)
    assert regularizers.L1L2(l1, l2)(w) == pytest.approx(expected, rel=tol)


def one_layer(kernel_reg, bias_reg, loss="mse"):
    net = nncore.Network([nncore.Dense(3, kernel_regularizer=kernel_reg,
                                       bias_regularizer=bias_reg)],
                         input_shape=(4,), dtype="float64", seed=3)
    net.layers[0].b[:] = [0.5, -0.25, 0.0]
    net.use(loss, *( (nncore.losses.mse_prime,) if callable(loss) else ()),
            optimizer=nncore.optimizers.SGD(0.1))
    return net


@pytest.mark.parametrize("python_loss", [False, True])
def test_training_step_adds_the_penalty_gradient_and_reports_it(python_loss):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 4))
    y = rng.normal(size=(10, 3))
    kernel_reg, bias_reg = regularizers.L1L2(0.03, 0.2), regularizers.L1(0.1)
    net = one_layer(kernel_reg, bias_reg, nncore.losses.mse if python_loss else "mse")
    assert (net.plans.training_plan(net, None, None) is None) or not python_loss
    W0, b0 = net.layers[0].W.copy(), net.layers[0].b.copy()
    out = x @ W0 + b0
    data_loss = np.mean((out - y) ** 2)
    dout = 2 * (out - y) / out.size
    penalty = kernel_reg(W0) + bias_reg(b0)
    assert net.regularization_loss() == pytest.approx(penalty, rel=1e-12)
    assert net.evaluate(x, y)["loss"] == pytest.approx(data_loss + penalty, rel=1e-12)
    history = net.fit(x, y, epochs=1, batch_size=10, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-12)
    gW = x.T @ dout + 0.03 * np.sign(W0) + 0.4 * W0
    gb = dout.sum(0) + 0.1 * np.sign(b0)
    np.testing.assert_allclose(net.layers[0].W, W0 - 0.1 * gW, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.layers[0].b, b0 - 0.1 * gb, rtol=1e-12, atol=1e-14)


def test_per_sample_sgd_with_a_penalty_matches_the_python_path():
    # batch_size=1 with plain SGD normally defers the first layer's updates;
    # a penalty needs every step's weights, so both paths must agree exactly
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(70, 4)), rng.normal(size=(70, 3))
    native = one_layer("l2", None)
    python = one_layer("l2", None, nncore.losses.mse)
    h1 = native.fit(x, y, epochs=2, batch_size=1, shuffle=False, verbose=0)
    h2 = python.fit(x, y, epochs=2, batch_size=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(native.layers[0].W, python.layers[0].W, rtol=1e-10)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-10)


def test_a_regularizer_shrinks_the_weights():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 3))).astype("float32")
    norms = []
    for reg in (None, regularizers.L2(0.5)):
        net = nncore.Network([nncore.Dense(3, kernel_regularizer=reg)], input_shape=(4,),
                             seed=0).use("mse", optimizer=nncore.optimizers.SGD(0.1))
        net.fit(x, y, epochs=50, verbose=0)
        norms.append(np.linalg.norm(net.layers[0].W))
    # the ridge optimum of mean((xW - y)^2) over 3 outputs + 0.5 |W|^2 is 0.4 W*
    assert norms[1] == pytest.approx(0.4 * norms[0], rel=0.05)


def test_conv_regularizers_save_and_load(tmp_path):
    net = nncore.Network([nncore.Conv2D(2, 3, kernel_regularizer=regularizers.L2(0.02),
                                        bias_regularizer="l1"),
                          nncore.Flatten(),
                          nncore.Dense(2, kernel_regularizer=regularizers.L1L2(0.1, 0.2))],
                         input_shape=(5, 5, 1), seed=0).use("mse")
    conv, dense = net.layers[0], net.layers[2]
    conv.bias[:] = [0.3, -0.2]
    expected = (0.02 * np.square(conv.kernel.astype(np.float64)).sum()
                + 0.01 * np.abs(conv.bias.astype(np.float64)).sum()
                + 0.1 * np.abs(dense.W.astype(np.float64)).sum()
                + 0.2 * np.square(dense.W.astype(np.float64)).sum())
    assert net.regularization_loss() == pytest.approx(expected, rel=1e-5)
    net.save(tmp_path / "m.nnc")
    loaded = nncore.load(tmp_path / "m.nnc")
    assert loaded.layers[0].kernel_regularizer == regularizers.L2(0.02)
    assert loaded.layers[0].bias_regularizer == regularizers.L1(0.01)
    assert loaded.layers[2].kernel_regularizer == regularizers.L1L2(0.1, 0.2)
    assert loaded.regularization_loss() == pytest.approx(expected, rel=1e-5)


def test_bad_regularizers_are_refused_with_the_layer_named():
    with pytest.raises(ValueError, match="Dense: .*regularizer 'l3'.*'l1', 'l1_l2'"):
        nncore.Dense(2, kernel_regularizer="l3")
    with pytest.raises(TypeError, match="Conv2D: a regularizer"):
        nncore.Conv2D(2, 3, bias_regularizer=0.1)
    with pytest.raises(ValueError, match="L2: l2 must be a finite number >= 0"):
        regularizers.L2(-1)
    with pytest.raises(ValueError, match="l1 must be a finite number"):
        regularizers.L1(float("nan"))


def test_nnclassifier_alpha_is_mlpclassifiers_penalty():
    pytest.importorskip("sklearn")
    from sklearn.metrics import log_loss
    from nncore.sklearn import NNClassifier
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 3))
    y = rng.integers(0, 3, 40)
    alpha = 0.7
    clf = NNClassifier(hidden_layer_sizes=(6,), alpha=alpha, batch_size=40, max_iter=1,
                       optimizer="sgd", shuffle=False, dtype="float64", random_state=0,
                       warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
        (W1, b1), (W2, b2) = [layer.params for layer in clf.network_.layers]
        W1, b1, W2, b2 = (a.copy() for a in (W1, b1, W2, b2))
        clf.fit(X, y)                     # one more full-batch epoch from these weights
    hidden = np.maximum(X @ W1 + b1, 0)
    logits = hidden @ W2 + b2
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    # scikit-learn's MLP loss: log loss + 0.5 * alpha * sum of squared coefs / n_samples
    expected = log_loss(y, probs) + 0.5 * alpha * (np.sum(W1 ** 2) + np.sum(W2 ** 2)) / len(X)
    assert clf.loss_curve_[1] == pytest.approx(expected, rel=1e-10)
    assert clf.network_.layers[0].bias_regularizer is None


def test_nnclassifier_alpha_zero_adds_nothing_and_bad_alpha_is_refused():
    pytest.importorskip("sklearn")
    from nncore.sklearn import NNClassifier
    X = np.random.default_rng(6).normal(size=(20, 3))
    y = np.arange(20) % 2
    clf = NNClassifier(hidden_layer_sizes=(4,), alpha=0.0, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    assert clf.network_.penalties == []
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        NNClassifier(alpha=-1.0).fit(X, y)


# ---------------------------------------------------- the sequence layers
SEQUENCE_CASES = {
    "Conv1D": (lambda: nncore.Conv1D(3, 2, padding="causal",
                                     kernel_regularizer=regularizers.L1L2(0.03, 0.2),
                                     bias_regularizer=regularizers.L1(0.1)),
               ("kernel_regularizer", "bias_regularizer"), (5, 2)),
    "Embedding": (lambda: nncore.Embedding(6, 3, embeddings_regularizer=regularizers.L1L2(
        0.05, 0.3)), ("embeddings_regularizer",), (5,)),
    **{cls.__name__: ((lambda cls=cls: cls(3, kernel_regularizer=regularizers.L2(0.2),
                                           recurrent_regularizer=regularizers.L1L2(0.04, 0.1),
                                           bias_regularizer=regularizers.L1(0.07))),
                      ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer"),
                      (5, 2))
       for cls in (nncore.SimpleRNN, nncore.LSTM, nncore.GRU)},
}


def sequence_net(name, with_regularizers=True):
    make, attributes, input_shape = SEQUENCE_CASES[name]
    layer = make()
    if not with_regularizers:
        for attribute in attributes:
            setattr(layer, attribute, None)
    net = nncore.Network([layer, nncore.Flatten(), nncore.Dense(2)], input_shape=input_shape,
                         dtype="float64", seed=7).use("mse")
    rng = np.random.default_rng(8)
    for p in layer.params[1:] if name != "Embedding" else []:
        p[...] = rng.normal(size=p.shape)          # nonzero biases: the L1 term has a slope
    x = (rng.integers(0, 6, size=(4, 5)) if name == "Embedding"
         else rng.normal(size=(4,) + input_shape)).astype(np.float64)
    return net, x, rng.normal(size=(4, 2))


def numpy_penalty(layer, attributes):
    total = 0.0
    for attribute, w in zip(attributes, layer.params):
        reg = getattr(layer, attribute)
        total += reg.l1 * np.abs(w).sum() + reg.l2 * np.square(w).sum()
    return total


@pytest.mark.parametrize("name", sorted(SEQUENCE_CASES))
def test_sequence_layer_penalty_is_in_the_loss_and_in_the_gradient(name):
    _, attributes, _ = SEQUENCE_CASES[name]
    net, x, y = sequence_net(name)
    layer = net.layers[0]
    penalty = numpy_penalty(layer, attributes)
    assert penalty > 0
    assert net.regularization_loss() == pytest.approx(penalty, rel=1e-12)
    plain, _, _ = sequence_net(name, with_regularizers=False)
    for a, b in zip(net.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert plain.regularization_loss() == 0
    data_loss = plain.evaluate(x, y)["loss"]
    assert net.evaluate(x, y)["loss"] == pytest.approx(data_loss + penalty, rel=1e-12)
    # the penalty's gradient is l1 * sign(w) + 2 * l2 * w on top of the data gradient
    with_penalty, without = net.gradients(x, y), plain.gradients(x, y)
    for k, (attribute, w) in enumerate(zip(attributes, layer.params)):
        reg = getattr(layer, attribute)
        np.testing.assert_allclose(with_penalty[k] - without[k],
                                   reg.l1 * np.sign(w) + 2 * reg.l2 * w, rtol=1e-9, atol=1e-12)
    # and the whole gradient agrees with finite differences of loss + penalty
    errors = nncore.check_gradients(net, x, y, max_entries=30)
    assert max(errors.values()) < 1e-6, errors
    history = net.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-12)


@pytest.mark.parametrize("name", sorted(SEQUENCE_CASES))
def test_sequence_layer_regularizers_save_and_load(name, tmp_path):
    _, attributes, _ = SEQUENCE_CASES[name]
    net, _, _ = sequence_net(name)
    net.save(tmp_path / "m.nnc")
    loaded = nncore.load(tmp_path / "m.nnc")
    for attribute in attributes:
        assert getattr(loaded.layers[0], attribute) == getattr(net.layers[0], attribute)
        assert getattr(loaded.layers[0], attribute) is not None
    assert loaded.regularization_loss() == pytest.approx(net.regularization_loss(), rel=1e-12)


def test_sequence_layer_regularizers_by_name_and_bad_ones():
    assert nncore.Embedding(4, 2, embeddings_regularizer="l2").embeddings_regularizer \
        == regularizers.L2(0.01)
    assert nncore.LSTM(2, recurrent_regularizer="l1").recurrent_regularizer \
        == regularizers.L1(0.01)
    with pytest.raises(ValueError, match="GRU: .*regularizer 'l3'"):
        nncore.GRU(2, recurrent_regularizer="l3")
    with pytest.raises(TypeError, match="Conv1D: a regularizer"):
        nncore.Conv1D(2, 3, kernel_regularizer=0.1)
    with pytest.raises(TypeError, match="Embedding: a regularizer"):
        nncore.Embedding(4, 2, embeddings_regularizer=[1])


@pytest.mark.parametrize("name", sorted(SEQUENCE_CASES))
def test_sequence_layer_penalties_count_once_per_sharded_batch(name, monkeypatch):
    # a batch trained in 3 shards adds each penalty once, after the shards'
    # gradients are summed: the same as one shard up to summation order
    from nncore import _plans
    results = {}
    for count in (1, 3):
        monkeypatch.setattr(_plans, "TRAINING_SHARDS", count)
        monkeypatch.setattr(_plans, "SHARD_WORK", 0)     # small layers: shards of 16
        net, _, _ = sequence_net(name)
        rng = np.random.default_rng(9)
        x = (rng.integers(0, 6, size=(48, 5)) if name == "Embedding"
             else rng.normal(size=(48,) + SEQUENCE_CASES[name][2])).astype(np.float64)
        y = rng.normal(size=(48, 2))
        net.use("mse", optimizer="adam")
        with nncore.threads(2):
            history = net.fit(x, y, epochs=2, batch_size=48, verbose=0)
        assert net.plans._train_plan.shard_count(48) == count
        results[count] = (net.get_weights(), history.history["loss"])
    for a, b in zip(results[1][0], results[3][0]):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(results[3][1], results[1][1], rtol=1e-12)
