"""Masking from Embedding(mask_zero=True) in SimpleRNN, LSTM and GRU.

At a masked step (index 0) the state is carried over unchanged; the last
output is the state after the last unmasked step; with return_sequences a
masked step outputs the carried state (Keras' default).  Checked against
PyTorch's packed sequences (float64, 1e-12: outputs and every weight
gradient, the table's included), by finite differences on masks of any
pattern, against the sequences with their padding removed, and through
every path a network runs: sharded training, predict, InferenceSession,
save/load, copy(), nncore.dask.predict.  Layers that cannot honour a mask
are refused when the network is built."""
import numpy as np
import pytest

import nncore
from nncore import _plans
from reference import numeric_gradient, relative_error

EXACT = 1e-12
CLASSES = {"simple": nncore.SimpleRNN, "lstm": nncore.LSTM, "gru": nncore.GRU}


def right_padded(n, steps, vocabulary, seed, shortest=1):
    """Indices in 1..vocabulary-1, row i of length lengths[i], then zeros."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(shortest, steps + 1, size=n)
    lengths[0] = steps
    ids = rng.integers(1, vocabulary, size=(n, steps))
    ids[np.arange(steps)[None, :] >= lengths[:, None]] = 0
    return ids


def masked_network(layer, steps=6, vocabulary=7, features=3, dtype="float64", seed=0):
    net = nncore.Network([nncore.Embedding(vocabulary, features, mask_zero=True), layer],
                         input_shape=(steps,), dtype=dtype, seed=seed)
    net.build()
    rng = np.random.default_rng(seed + 1)
    for bias in net.layers[1].params[2::3]:
        bias[...] = rng.normal(size=bias.shape) * 0.5
    return net


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("sequences", [False, True])
@pytest.mark.parametrize("backwards", [False, True])
def test_masked_layer_matches_torch_packed_sequences(cell, sequences, backwards):
    torch_recurrent = pytest.importorskip("torch_recurrent")
    net = masked_network(CLASSES[cell](4, return_sequences=sequences, go_backwards=backwards))
    net.use("mse", optimizer="sgd")
    ids = right_padded(5, 6, 7, seed=2)
    target = np.random.default_rng(3).normal(size=(5,) + net.output_shape)
    expected, grads = torch_recurrent.masked_reference(cell, net.get_weights(), ids, target,
                                                       sequences, backwards)
    assert relative_error(net.predict(ids), expected) < EXACT
    ours = net.gradients(ids, target)
    assert len(ours) == len(grads)
    for mine, theirs in zip(ours, grads):
        assert mine.shape == theirs.shape
        assert relative_error(mine, theirs) < EXACT


def masked_loss_and_gradients(net, ids, target):
    net.use("mse", optimizer="sgd")
    grads = net.gradients(ids, target)
    f = lambda: float(net.evaluate(ids, target)["loss"])
    return grads, f


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("sequences", [False, True])
@pytest.mark.parametrize("backwards", [False, True])
def test_masked_layer_finite_differences(cell, sequences, backwards):
    net = masked_network(CLASSES[cell](3, return_sequences=sequences, go_backwards=backwards),
                         steps=5, vocabulary=5, features=2)
    # masks of every kind: padding on the right, on the left, in the middle,
    # a row with no unmasked step, a row with none masked
    ids = np.array([[1, 2, 0, 0, 0], [0, 0, 3, 4, 1], [2, 0, 4, 0, 3], [0, 0, 0, 0, 0],
                    [4, 3, 2, 1, 4]])
    target = np.random.default_rng(4).normal(size=(5,) + net.output_shape)
    grads, f = masked_loss_and_gradients(net, ids, target)
    for param, grad in zip(net.params, grads):
        assert relative_error(grad, numeric_gradient(f, param)) < 1e-6


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_masked_steps_are_skipped(cell):
    """Any mask pattern: the last state is that of the unmasked steps alone,
    and a masked step of a sequence outputs the state carried over it."""
    net = masked_network(CLASSES[cell](4))
    seq = masked_network(CLASSES[cell](4, return_sequences=True))
    seq.set_weights(net.get_weights())
    ids = np.array([[3, 0, 5, 0, 0, 6], [0, 0, 1, 2, 3, 4], [6, 5, 4, 0, 0, 0],
                    [0, 0, 0, 0, 0, 0]])
    last, steps = net.predict(ids), seq.predict(ids)
    for row, out, every in zip(ids, last, steps):
        kept = row[row != 0]
        if not kept.size:
            np.testing.assert_array_equal(out, 0)
            np.testing.assert_array_equal(every, 0)
            continue
        alone = nncore.Network([nncore.Embedding(7, 3), CLASSES[cell](4)],
                               input_shape=(kept.size,), dtype="float64")
        alone.set_weights(net.get_weights())
        np.testing.assert_allclose(out, alone.predict(kept[None])[0], rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(every[-1], out)
        for t in np.flatnonzero(row == 0):
            np.testing.assert_array_equal(every[t], every[t - 1] if t else 0)


def test_without_mask_zero_index_zero_is_a_token():
    net = masked_network(nncore.LSTM(3))
    plain = nncore.Network([nncore.Embedding(7, 3), nncore.LSTM(3)], input_shape=(6,),
                           dtype="float64")
    plain.set_weights(net.get_weights())
    ids = np.array([[1, 2, 0, 0, 0, 0]])
    assert not np.allclose(plain.predict(ids), net.predict(ids))


def masked_stack(dtype="float32", seed=0):
    """Every layer that passes a mask on (a Residual block around a masked
    LSTM too), and the three cells."""
    return nncore.Network([
        nncore.Embedding(9, 6, mask_zero=True), nncore.PositionalEmbedding(10, 6),
        nncore.Dense(6, activation="tanh"), nncore.Dropout(0.1), nncore.LayerNormalization(),
        nncore.Residual(nncore.LayerNormalization(), nncore.Dense(6), nncore.ReLU()),
        nncore.Residual(nncore.LSTM(6, return_sequences=True)),
        nncore.GRU(5, return_sequences=True, go_backwards=True),
        nncore.SimpleRNN(4, return_sequences=True), nncore.LSTM(4), nncore.Dense(3)],
        input_shape=(10,), dtype=dtype, seed=seed)


def test_masked_network_trains_in_shards_as_in_one_piece(monkeypatch):
    """The shards of a batch each read the mask of their own rows: training
    in 4 shards on 1 or 2 threads equals training in one piece to rounding
    (float64), and the thread count changes no bit."""
    monkeypatch.setattr(_plans, "SHARD_WORK", 0)
    ids = right_padded(256, 10, 9, seed=5, shortest=0)
    y = np.random.default_rng(6).integers(0, 3, 256)
    results = {}
    for shards, threads in ((1, 1), (4, 1), (4, 2)):
        monkeypatch.setattr(_plans, "TRAINING_SHARDS", shards)
        net = masked_stack("float64")
        net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                optimizer="adam")
        with nncore.threads(threads):
            net.fit(ids, y, epochs=2, batch_size=128, verbose=0)
        results[shards, threads] = net.get_weights()
        if shards > 1:
            assert net.plans._train_plan.shard_count(128) == 4
    for a, b in zip(results[1, 1], results[4, 1]):
        assert relative_error(a, b) < 1e-10
    for a, b in zip(results[4, 1], results[4, 2]):
        np.testing.assert_array_equal(a, b)


def test_masked_network_in_every_path(tmp_path):
    da = pytest.importorskip("dask.array")
    import nncore.dask
    net = masked_stack()
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    ids = right_padded(600, 10, 9, seed=7, shortest=0)
    net.fit(ids, np.arange(600) % 3, epochs=1, verbose=0)
    expected = net.predict(ids)
    # the mask reaches every recurrent layer, the one in the Residual block too:
    # the padding's row of the table changes nothing
    assert [layer.receives_mask for layer in net.layers[6].layers + net.layers[7:10]] == \
        [True] * 4
    padding_row = net.layers[0].embeddings[0].copy()
    net.layers[0].embeddings[0] += 5
    np.testing.assert_array_equal(net.predict(ids), expected)
    net.layers[0].embeddings[0] = padding_row
    np.testing.assert_allclose(net.predict(ids[:1]), expected[:1], rtol=1e-5, atol=1e-6)
    with nncore.threads(2):
        np.testing.assert_array_equal(net.predict(ids), expected)
    np.testing.assert_allclose(net.predict(ids, batch_size=7), expected, rtol=0,
                               atol=64 * np.finfo(np.float32).eps * np.abs(expected).max())
    session = nncore.InferenceSession(net)
    np.testing.assert_array_equal(session.predict(ids.astype(np.float32)), expected)
    path = tmp_path / "masked.nncore"
    net.save(path)
    for other in (nncore.load(path), net.copy()):
        assert other.layers[0].mask_zero
        np.testing.assert_array_equal(other.predict(ids), expected)
        np.testing.assert_array_equal(nncore.InferenceSession(other).predict(
            ids.astype(np.float32)), expected)
    result = nncore.dask.predict(net, da.from_array(ids, chunks=(130, 10))).compute(
        scheduler="synchronous")
    np.testing.assert_allclose(result, expected, rtol=0,
                               atol=64 * np.finfo(np.float32).eps * np.abs(expected).max())


class Twice(nncore.Layer):
    def forward(self, x, training=False):
        return 2 * x

    def backward(self, dy):
        return 2 * dy


@pytest.mark.parametrize("layers,where,what", [
    ([nncore.Conv1D(3, 2)], "layer 1 (Conv1D)", "does not support masking"),
    ([nncore.GlobalMaxPooling1D()], "layer 1 (GlobalMaxPooling1D)",
     "does not support masking"),
    ([nncore.Flatten(), nncore.Dense(2)], "layer 1 (Flatten)", "does not support masking"),
    ([nncore.LSTM(3, return_sequences=True), nncore.MaxPool1D(2)], "layer 2 (MaxPool1D)",
     "does not support masking"),
    ([nncore.Residual(nncore.LayerNormalization(), nncore.MultiHeadAttention(1, 4))],
     "layer 1 (Residual), its layer 1 (MultiHeadAttention)", "does not support masking"),
    ([nncore.LSTM(3), Twice()], "layer 2 (Twice)", "runs in Python"),
])
def test_layers_that_cannot_honour_a_mask_are_refused(layers, where, what):
    net = nncore.Network([nncore.Embedding(5, 4, mask_zero=True)] + layers)
    with pytest.raises(ValueError, match=r"\(") as error:
        net.build((6,))
    assert where in str(error.value) and what in str(error.value)
    assert not net.built


def test_the_mask_ends_at_a_layer_without_sequences():
    net = nncore.Network([nncore.Embedding(5, 4, mask_zero=True), nncore.GRU(3),
                          nncore.Dense(4), nncore.Dense(2)], input_shape=(6,), seed=0)
    net.build()
    net = nncore.Network([nncore.Embedding(5, 4, mask_zero=True), nncore.Dense(4),
                          nncore.LSTM(3, return_sequences=True), nncore.SimpleRNN(2),
                          nncore.Dense(2)], input_shape=(6,), seed=0)
    assert net.predict(np.zeros((1, 6))).shape == (1, 2)
    with pytest.raises(ValueError, match="mask_zero must be True or False"):
        nncore.Embedding(5, 4, mask_zero="yes")


def sum_data(n, seed, steps=10):
    """Sequences of 1 to `steps` digits 1..9 padded with 0 on the right;
    the target is their sum (0 to 90)."""
    ids = right_padded(n, steps, 10, seed)
    return ids, ids.sum(axis=1).astype(np.float64)


@pytest.mark.parametrize("layer", [nncore.LSTM, nncore.GRU])
def test_masked_layer_learns_sums_of_variable_length_sequences(layer):
    """The sum of up to 10 digits, read by a masked recurrent layer, is
    predicted exactly (rounded) for over 95% of unseen sequences."""
    x, y = sum_data(4000, 0)
    tx, ty = sum_data(1000, 1)
    net = nncore.Network([nncore.Embedding(10, 8, mask_zero=True), layer(32), nncore.Dense(1)],
                         input_shape=(10,), seed=0)
    net.use("mse", optimizer=nncore.optimizers.Adam(0.01))
    net.fit(x, y / 10, epochs=40, batch_size=32, verbose=0)
    accuracy = np.mean(np.round(net.predict(tx)[:, 0] * 10) == ty)
    assert accuracy > 0.95, accuracy


def test_training_with_a_python_loss_is_refused():
    """A loss written in Python trains layer by layer, where no mask reaches."""
    def mse(y_true, y_pred):
        return float(np.mean((y_pred - y_true) ** 2))

    def mse_prime(y_true, y_pred):
        return 2 * (y_pred - y_true) / y_pred.size

    net = masked_network(nncore.GRU(2))
    net.use(mse, mse_prime, optimizer="sgd")
    ids = right_padded(8, 6, 7, seed=8)
    before = net.get_weights()
    for call in (lambda: net.fit(ids, np.zeros((8, 2)), verbose=0),
                 lambda: net.gradients(ids, np.zeros((8, 2)))):
        with pytest.raises(ValueError, match="Embedding\\(mask_zero=True\\) trains in the "
                                             "native core only"):
            call()
    for a, b in zip(before, net.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_float32_masked_network_agrees_with_float64_and_trains_per_sample():
    ids = np.array([[3, 0, 5, 0, 0, 6], [0, 0, 1, 2, 3, 4], [6, 5, 4, 0, 0, 0],
                    [0, 0, 0, 0, 0, 0]])
    for layer in (lambda: nncore.LSTM(4, return_sequences=True, go_backwards=True),
                  lambda: nncore.Bidirectional(nncore.GRU(3, return_sequences=True), "ave")):
        double = masked_network(layer())
        single = masked_network(layer(), dtype="float32")
        single.set_weights(double.get_weights())
        target = np.random.default_rng(9).normal(size=(4,) + double.output_shape)
        np.testing.assert_allclose(single.predict(ids), double.predict(ids), rtol=1e-5,
                                   atol=1e-6)
        for net in (single, double):
            net.use("mse", optimizer="sgd")
        for a, b in zip(single.gradients(ids, target), double.gradients(ids, target)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        # per-sample SGD (batch_size=1) takes the steps the gradients give
        start = double.get_weights()
        step = double.gradients(ids[:1], target[:1])
        double.fit(ids[:1], target[:1], epochs=1, batch_size=1, verbose=0)
        for before, after, grad in zip(start, double.get_weights(), step):
            np.testing.assert_allclose(after, before - 0.01 * grad, rtol=1e-12, atol=1e-15)



def average_network(dtype="float64"):
    net = nncore.Network([nncore.Embedding(7, 4, mask_zero=True),
                          nncore.Dense(5, activation="tanh"), nncore.GlobalAveragePooling1D(),
                          nncore.Dense(3)], input_shape=(6,), dtype=dtype, seed=0).build()
    rng = np.random.default_rng(1)
    for p in net.params[1:]:
        p[...] = rng.normal(size=p.shape) * 0.5
    return net


def test_global_average_over_the_unmasked_steps_matches_torch():
    torch = pytest.importorskip("torch")
    net = average_network()
    net.use("mse", optimizer="sgd")
    ids = np.array([[3, 0, 5, 0, 0, 6], [0, 0, 1, 2, 3, 4], [6, 5, 4, 0, 0, 0],
                    [0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    target = np.random.default_rng(2).normal(size=(5, 3))
    weights = [torch.tensor(w, requires_grad=True) for w in net.get_weights()]
    table, k1, b1, k2, b2 = weights
    valid = torch.tensor((ids != 0)[:, :, None].astype(np.float64))
    hidden = torch.tanh(table[torch.tensor(ids)] @ k1 + b1)
    mean = (hidden * valid).sum(1) / valid.sum(1).clamp(min=1)      # zeros with no step
    out = mean @ k2 + b2
    ((out - torch.tensor(target)) ** 2).mean().backward()
    assert relative_error(net.predict(ids), out.detach().numpy()) < EXACT
    for mine, theirs in zip(net.gradients(ids, target), weights):
        assert relative_error(mine, theirs.grad.numpy()) < EXACT
    # and by finite differences
    f = lambda: float(net.evaluate(ids, target)["loss"])
    grads = net.gradients(ids, target)
    for param, grad in zip(net.params, grads):
        assert relative_error(grad, numeric_gradient(f, param)) < 1e-6
    # a layer alone has no mask; without mask_zero every step counts
    plain = nncore.Network([nncore.Embedding(7, 4), nncore.Dense(5, activation="tanh"),
                            nncore.GlobalAveragePooling1D(), nncore.Dense(3)],
                           input_shape=(6,), dtype="float64")
    plain.set_weights(net.get_weights())
    np.testing.assert_allclose(plain.predict(ids[4:]), net.predict(ids[4:]), rtol=1e-14)
    assert not np.allclose(plain.predict(ids[:1]), net.predict(ids[:1]))

