"""Sequence layers inside networks: training to a known answer, save/load and
copy() round trips, NNClassifier(layers=...), InferenceSession and
nncore.dask.predict."""
import numpy as np
import pytest

import nncore


def motif_data(n, seed):
    """Sequences of 12 tokens in 0..5; class 1 when token 4 is directly
    followed by token 5 somewhere (a pattern a bag of tokens cannot see)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, size=(n, 12))
    y = np.array([any(a == 4 and b == 5 for a, b in zip(row[:-1], row[1:])) for row in x])
    return x, y.astype(np.int64)


def sequence_layers():
    return [nncore.Embedding(6, 8), nncore.Conv1D(16, 2, activation="relu"),
            nncore.LayerNormalization(), nncore.MaxPool1D(2, strides=1, padding="same"),
            nncore.GlobalMaxPooling1D(), nncore.Dense(2)]


def convolutional_network(dtype):
    return nncore.Network(
        [nncore.Embedding(6, 4), nncore.Conv1D(5, 3, padding="causal", dilation_rate=2),
         nncore.LayerNormalization(), nncore.AveragePooling1D(2),
         nncore.MaxPool1D(2, strides=1, padding="same"), nncore.Conv1D(3, 2, strides=2),
         nncore.GlobalAveragePooling1D(), nncore.Dense(2)],
        input_shape=(12,), dtype=dtype, seed=0).build()


def recurrent_network(dtype):
    return nncore.Network(
        [nncore.Embedding(6, 4), nncore.LSTM(5, return_sequences=True),
         nncore.GRU(4, return_sequences=True, go_backwards=True), nncore.SimpleRNN(3),
         nncore.Dense(2)], input_shape=(12,), dtype=dtype, seed=0).build()


def transformer_layers(outputs=2):
    return [nncore.Embedding(6, 8), nncore.PositionalEmbedding(12, 8),
            nncore.Residual(nncore.LayerNormalization(),
                            nncore.MultiHeadAttention(2, 4, causal=True)),
            nncore.Residual(nncore.LayerNormalization(), nncore.Dense(16, activation="relu"),
                            nncore.Residual(nncore.Dense(16)), nncore.Dense(8)),
            nncore.GlobalAveragePooling1D(), nncore.Dense(outputs)]


def transformer_network(dtype):
    return nncore.Network(transformer_layers(), input_shape=(12,), dtype=dtype,
                          seed=0).build()


NETWORKS = [convolutional_network, recurrent_network, transformer_network]


@pytest.fixture(params=NETWORKS, ids=lambda f: f.__name__)
def every_layer_network(request):
    """A network builder; together they hold every sequence layer."""
    return lambda dtype="float32": request.param(dtype)


def test_embedding_conv1d_network_learns_an_ordered_motif():
    x, y = motif_data(3000, 0)
    tx, ty = motif_data(1000, 1)
    net = nncore.Network(sequence_layers(), input_shape=(12,), seed=0)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam",
            metrics=["accuracy"])
    net.fit(x, y, epochs=15, batch_size=32, verbose=0)
    accuracy = np.mean(net.predict(tx).argmax(axis=1) == ty)
    assert accuracy > 0.97, accuracy


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_and_copy_round_trips(tmp_path, dtype, every_layer_network):
    net = every_layer_network(dtype)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    x, y = motif_data(64, 2)
    net.fit(x, y, epochs=1, verbose=0)
    expected = net.predict(x)
    path = tmp_path / "sequence.nncore"
    net.save(path)
    for other in (nncore.load(path), net.copy()):
        assert [type(a) for a in other.layers] == [type(b) for b in net.layers]
        assert [a.get_config() for a in other.layers] == [b.get_config() for b in net.layers]
        np.testing.assert_array_equal(other.predict(x), expected)
    # training continues identically from the copy
    clone = net.copy()
    net.fit(x, y, epochs=1, verbose=0, shuffle=False)
    clone.fit(x, y, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_array_equal(clone.predict(x), net.predict(x))


def test_native_plan_matches_layer_by_layer_python(every_layer_network):
    net = every_layer_network("float64")
    x, _ = motif_data(40, 3)
    out = x.astype(np.float64)
    for layer in net.layers:
        out = layer.forward(out)
    np.testing.assert_allclose(net.predict(x), out, rtol=1e-13, atol=1e-13)


def test_inference_session_and_threads_agree(every_layer_network):
    net = every_layer_network()
    x, _ = motif_data(700, 4)
    expected = net.predict(x)
    session = nncore.InferenceSession(net)
    np.testing.assert_array_equal(session.predict(x.astype(np.float32)), expected)
    with nncore.threads(2):
        np.testing.assert_array_equal(net.predict(x), expected)


def test_dask_predict(every_layer_network):
    da = pytest.importorskip("dask.array")
    import nncore.dask
    net = every_layer_network()
    x, _ = motif_data(300, 5)
    result = nncore.dask.predict(net, da.from_array(x, chunks=(70, 12))).compute(
        scheduler="synchronous")
    np.testing.assert_array_equal(result, net.predict(x))


@pytest.mark.filterwarnings("ignore:.*without converging")
def test_nnclassifier_with_sequence_layers():
    pytest.importorskip("sklearn")
    da = pytest.importorskip("dask.array")
    import nncore.dask
    from nncore.sklearn import NNClassifier
    x, y = motif_data(2000, 6)
    tx, ty = motif_data(500, 7)
    model = NNClassifier(layers=lambda n_features, n_outputs: sequence_layers()[:-1]
                         + [nncore.Dense(n_outputs)], max_iter=15, random_state=0,
                         early_stopping=False, tol=0)
    model.fit(x, y)
    assert model.score(tx, ty) > 0.95
    attention = NNClassifier(layers=lambda n_features, n_outputs: transformer_layers(n_outputs),
                             max_iter=15, random_state=0, early_stopping=False, tol=0,
                             alpha=1e-4, learning_rate=1e-2)
    attention.fit(x, y)
    assert attention.score(tx, ty) > 0.97
    inner = attention.network_.layers[3].layers[1]
    assert inner.kernel_regularizer is not None       # alpha reaches Dense inside blocks
    proba = nncore.dask.predict(model, da.from_array(tx, chunks=(100, 12)),
                                method="predict_proba").compute(scheduler="synchronous")
    # other chunks than predict_proba's: equal within 64 machine epsilons of the
    # largest output (see "What is bit-identical" in the embedding guide)
    np.testing.assert_allclose(proba, model.predict_proba(tx), rtol=0,
                               atol=64 * np.finfo(np.float32).eps)
