"""Bidirectional(layer, merge_mode) around SimpleRNN, LSTM and GRU: PyTorch's
bidirectional=True in float64 to 1e-12 (outputs and every weight gradient,
with and without a mask, packed sequences for the masked batches), finite
differences, saving, copy(), NNClassifier(layers=...), nncore.dask.predict
and the arguments it refuses."""
import numpy as np
import pytest

import nncore
from reference import numeric_gradient, relative_error
from test_masking import right_padded

EXACT = 1e-12
CLASSES = {"simple": nncore.SimpleRNN, "lstm": nncore.LSTM, "gru": nncore.GRU}
MERGES = ["concat", "sum", "mul", "ave"]


def bidirectional_network(cell, sequences, merge, mask=True, steps=6, vocabulary=7,
                          features=3, units=4, dtype="float64"):
    net = nncore.Network([nncore.Embedding(vocabulary, features, mask_zero=mask),
                          nncore.Bidirectional(CLASSES[cell](units, return_sequences=sequences),
                                               merge_mode=merge)],
                         input_shape=(steps,), dtype=dtype, seed=0).build()
    rng = np.random.default_rng(1)
    for bias in net.layers[1].params[2::3]:
        bias[...] = rng.normal(size=bias.shape) * 0.5
    return net


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("sequences", [False, True])
@pytest.mark.parametrize("merge", MERGES)
@pytest.mark.parametrize("mask", [True, False])
def test_bidirectional_matches_torch(cell, sequences, merge, mask):
    torch_recurrent = pytest.importorskip("torch_recurrent")
    net = bidirectional_network(cell, sequences, merge, mask)
    net.use("mse", optimizer="sgd")
    # without a mask, index 0 is a token like any other: torch reads every step
    ids = right_padded(5, 6, 7, seed=2) if mask else \
        np.random.default_rng(2).integers(1, 7, size=(5, 6))
    target = np.random.default_rng(3).normal(size=(5,) + net.output_shape)
    expected, grads = torch_recurrent.masked_reference(cell, net.get_weights(), ids, target,
                                                       sequences, bidirectional=True,
                                                       merge=merge)
    assert relative_error(net.predict(ids), expected) < EXACT
    ours = net.gradients(ids, target)
    assert [g.shape for g in ours] == [g.shape for g in grads]
    for mine, theirs in zip(ours, grads):
        assert relative_error(mine, theirs) < EXACT


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("sequences", [False, True])
@pytest.mark.parametrize("merge", MERGES)
def test_bidirectional_finite_differences(cell, sequences, merge):
    net = bidirectional_network(cell, sequences, merge, steps=5, vocabulary=5, features=2,
                                units=2)
    net.use("mse", optimizer="sgd")
    ids = np.array([[1, 2, 0, 0, 0], [0, 0, 3, 4, 1], [2, 0, 4, 0, 3], [0, 0, 0, 0, 0],
                    [4, 3, 2, 1, 4]])
    target = np.random.default_rng(4).normal(size=(5,) + net.output_shape)
    grads = net.gradients(ids, target)
    f = lambda: float(net.evaluate(ids, target)["loss"])
    # 'mul' multiplies two small states: gradients near 1e-5 of a loss near
    # 1, so central differences keep fewer digits
    tolerance = 1e-5 if merge == "mul" else 1e-6
    for param, grad in zip(net.params, grads):
        assert relative_error(grad, numeric_gradient(f, param)) < tolerance


def test_bidirectional_is_the_layer_and_its_backward_copy():
    """Without a mask: the forward half is the layer, the backward half the
    go_backwards copy with its steps put back in input order."""
    net = nncore.Network([nncore.Bidirectional(nncore.GRU(3, return_sequences=True))],
                         input_shape=(5, 2), dtype="float64", seed=0)
    x = np.random.default_rng(0).normal(size=(4, 5, 2))
    weights = net.get_weights()
    halves = []
    for backwards, part in ((False, weights[:3]), (True, weights[3:])):
        one = nncore.Network([nncore.GRU(3, return_sequences=True, go_backwards=backwards)],
                             input_shape=(5, 2), dtype="float64")
        one.set_weights(part)
        out = one.predict(x)
        halves.append(out[:, ::-1] if backwards else out)
    np.testing.assert_allclose(net.predict(x), np.concatenate(halves, -1), rtol=1e-14,
                               atol=1e-15)


def test_bidirectional_saves_copies_and_runs_everywhere(tmp_path):
    da = pytest.importorskip("dask.array")
    import nncore.dask
    net = nncore.Network([nncore.Embedding(8, 5, mask_zero=True),
                          nncore.Bidirectional(nncore.LSTM(4, return_sequences=True,
                                                           kernel_regularizer="l2")),
                          nncore.Bidirectional(nncore.SimpleRNN(3), merge_mode="ave"),
                          nncore.Dense(2)], input_shape=(9,), seed=0)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    ids = right_padded(300, 9, 8, seed=3, shortest=0)
    net.fit(ids, np.arange(300) % 2, epochs=1, verbose=0)
    expected = net.predict(ids)
    path = tmp_path / "bidirectional.nncore"
    net.save(path)
    for other in (nncore.load(path), net.copy()):
        assert repr(other.layers) == repr(net.layers)
        assert [a.get_config() for a in other.layers] == [b.get_config() for b in net.layers]
        np.testing.assert_array_equal(other.predict(ids), expected)
    assert len(net.penalties) == 2        # the regularizer of both directions' kernels
    session = nncore.InferenceSession(net)
    np.testing.assert_array_equal(session.predict(ids.astype(np.float32)), expected)
    result = nncore.dask.predict(net, da.from_array(ids, chunks=(70, 9))).compute(
        scheduler="synchronous")
    np.testing.assert_allclose(result, expected, rtol=0,
                               atol=64 * np.finfo(np.float32).eps * np.abs(expected).max())


@pytest.mark.filterwarnings("ignore:.*without converging")
def test_bidirectional_in_nnclassifier_learns_sequences_that_end_in_a_motif():
    pytest.importorskip("sklearn")
    from nncore.sklearn import NNClassifier

    def data(n, seed):
        """3 to 10 tokens in 1..4 padded with 0; class 1 when the sequence
        ends in 4, 1 (half the rows are made to end in 4 and then 1 or 2, so
        that the classes are near balanced)."""
        rng = np.random.default_rng(seed)
        ids = right_padded(n, 10, 5, seed, shortest=3)
        last = (ids != 0).sum(axis=1) - 1
        rows = np.flatnonzero(rng.random(n) < 0.5)
        ids[rows, last[rows] - 1] = 4
        ids[rows, last[rows]] = rng.choice([1, 2], size=rows.size)
        every = np.arange(n)
        y = (ids[every, last - 1] == 4) & (ids[every, last] == 1)
        return ids, y.astype(np.int64)

    x, y = data(3000, 0)
    tx, ty = data(1000, 1)
    model = NNClassifier(layers=lambda n_features, n_outputs: [
        nncore.Embedding(5, 8, mask_zero=True),
        nncore.Bidirectional(nncore.GRU(16)), nncore.Dense(n_outputs)],
        max_iter=15, random_state=0, early_stopping=False, tol=0, learning_rate=1e-2)
    model.fit(x, y)
    assert model.score(tx, ty) > 0.97


def test_bidirectional_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="merge_mode=None"):
        nncore.Bidirectional(nncore.LSTM(3), merge_mode=None)
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        nncore.Bidirectional(nncore.LSTM(3), merge_mode="max")
    with pytest.raises(TypeError, match="wraps a SimpleRNN, LSTM or GRU"):
        nncore.Bidirectional(nncore.Dense(3))
    with pytest.raises(ValueError, match="go_backwards=False"):
        nncore.Bidirectional(nncore.GRU(3, go_backwards=True))
    with pytest.raises(ValueError, match=r"layer 0 \(Bidirectional\).*expected input"):
        nncore.Network([nncore.Bidirectional(nncore.GRU(3))], input_shape=(4,))
