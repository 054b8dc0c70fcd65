"""ONNX export of the sequence layers, run by onnxruntime (float32, 1e-4)."""
import numpy as np
import pytest

import nncore

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import nncore.onnx  # noqa: E402


def run_onnx(model, x):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


NETWORKS = {
    "conv": lambda: [nncore.Embedding(7, 5), nncore.Conv1D(6, 3, padding="causal",
                                                           dilation_rate=2, activation="tanh"),
                     nncore.LayerNormalization(), nncore.MaxPool1D(2),
                     nncore.Conv1D(4, 2, strides=2, padding="same"),
                     nncore.AveragePooling1D(3, strides=1, padding="same"),
                     nncore.GlobalMaxPooling1D(), nncore.Dense(3)],
    "global_average": lambda: [nncore.Embedding(7, 5), nncore.GlobalAveragePooling1D()],
    "lstm": lambda: [nncore.Embedding(7, 5), nncore.LSTM(6, return_sequences=True),
                     nncore.LSTM(4, go_backwards=True)],
    "gru": lambda: [nncore.Embedding(7, 5), nncore.GRU(6, return_sequences=True,
                                                       go_backwards=True), nncore.GRU(4)],
    "simple": lambda: [nncore.Embedding(7, 5), nncore.SimpleRNN(6, return_sequences=True),
                       nncore.LayerNormalization(), nncore.SimpleRNN(4, go_backwards=True)],
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_sequence_layers_export_and_match_onnxruntime(name):
    net = nncore.Network(NETWORKS[name](), input_shape=(12,), seed=0).build()
    rng = np.random.default_rng(0)
    for layer in net.layers:             # non-trivial biases and normalization weights
        for p in layer.params[1:]:
            p[...] = rng.normal(size=p.shape) * 0.3
    x = rng.integers(0, 7, size=(9, 12)).astype(np.float32)
    model = nncore.onnx.export(net)
    np.testing.assert_allclose(run_onnx(model, x), net.predict(x), rtol=1e-4, atol=1e-4)


def test_transformer_exports_and_matches_onnxruntime():
    def block(causal):
        return [nncore.Residual(nncore.LayerNormalization(),
                                nncore.MultiHeadAttention(2, 3, causal=causal)),
                nncore.Residual(nncore.LayerNormalization(),
                                nncore.Dense(10, activation="relu"), nncore.Dense(5))]
    layers = [nncore.Embedding(7, 5), nncore.PositionalEmbedding(12, 5), *block(True),
              *block(False), nncore.Residual(nncore.Conv1D(5, 3, padding="causal")),
              nncore.Residual(nncore.MultiHeadAttention(1, 4, use_bias=False)),
              nncore.Dense(7)]
    net = nncore.Network(layers, input_shape=(10,), seed=0).build()
    rng = np.random.default_rng(1)
    for p in net.params:
        p[...] = rng.normal(size=p.shape) * 0.5
    x = rng.integers(0, 7, size=(9, 10)).astype(np.float32)
    model = nncore.onnx.export(net)
    ops = {node.op_type for node in model.graph.node}
    assert {"MatMul", "Softmax", "Add"} <= ops and "Attention" not in ops
    np.testing.assert_allclose(run_onnx(model, x), net.predict(x), rtol=1e-4, atol=1e-4)


def test_residual_over_images_exports_channels_last():
    net = nncore.Network([nncore.Conv2D(3, 3, padding="same"),
                          nncore.Residual(nncore.Conv2D(3, 3, padding="same",
                                                        activation="relu"),
                                          nncore.BatchNormalization()),
                          nncore.Flatten(), nncore.Dense(2)],
                         input_shape=(6, 6, 2), seed=0).build()
    x = np.random.default_rng(2).normal(size=(4, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(nncore.onnx.export(net), x), net.predict(x),
                               rtol=1e-4, atol=1e-4)


def test_transformer_float64_export_matches_to_1e12():
    layers = [nncore.Embedding(7, 6), nncore.PositionalEmbedding(10, 6),
              nncore.Residual(nncore.LayerNormalization(),
                              nncore.MultiHeadAttention(2, 3, causal=True)),
              nncore.Residual(nncore.LayerNormalization(),
                              nncore.Dense(12, activation="relu"), nncore.Dense(6)),
              nncore.Residual(nncore.MultiHeadAttention(3, 2, use_bias=False)),
              nncore.Dense(7)]
    net = nncore.Network(layers, input_shape=(10,), dtype="float64", seed=0).build()
    rng = np.random.default_rng(3)
    for p in net.params:
        p[...] = rng.normal(size=p.shape) * 0.5
    x = rng.integers(0, 7, size=(5, 10)).astype(np.float64)
    expected = net.predict(x)
    out = run_onnx(nncore.onnx.export(net), x)
    assert np.abs(out - expected).max() <= 1e-12 * np.abs(expected).max()


MASKED = {
    "lstm": lambda: [nncore.Embedding(7, 5, mask_zero=True),
                     nncore.LSTM(6, return_sequences=True), nncore.Dense(5),
                     nncore.LSTM(4, return_sequences=True, go_backwards=True),
                     nncore.LSTM(3, go_backwards=True)],
    "gru": lambda: [nncore.Embedding(7, 5, mask_zero=True),
                    nncore.GRU(6, return_sequences=True, go_backwards=True), nncore.GRU(4)],
    "simple": lambda: [nncore.Embedding(7, 5, mask_zero=True),
                       nncore.SimpleRNN(6, return_sequences=True),
                       nncore.LayerNormalization(), nncore.SimpleRNN(4, return_sequences=True)],
    "bidirectional": lambda: [nncore.Embedding(7, 5, mask_zero=True),
                              nncore.Bidirectional(nncore.LSTM(4, return_sequences=True)),
                              nncore.Bidirectional(nncore.GRU(3, return_sequences=True),
                                                   merge_mode="mul"),
                              nncore.Bidirectional(nncore.SimpleRNN(3), merge_mode="sum")],
    "average": lambda: [nncore.Embedding(7, 5, mask_zero=True), nncore.Dense(4),
                        nncore.GlobalAveragePooling1D(), nncore.Dense(2)],
    "bidirectional_unmasked": lambda: [
        nncore.Embedding(7, 5), nncore.Bidirectional(nncore.GRU(4, return_sequences=True),
                                                     merge_mode="ave"),
        nncore.Bidirectional(nncore.LSTM(3))],
}


@pytest.mark.parametrize("name", sorted(MASKED))
def test_masked_and_bidirectional_layers_export_and_match_onnxruntime(name):
    """ONNX's recurrent nodes take lengths: the export of a masked network
    is exact on right-padded rows (the rows here have 0 to 12 tokens)."""
    net = nncore.Network(MASKED[name](), input_shape=(12,), seed=0).build()
    rng = np.random.default_rng(0)
    for p in net.params[1:]:
        p[...] = rng.normal(size=p.shape) * 0.3
    lengths = rng.integers(1, 13, size=9)
    lengths[0] = 0
    x = rng.integers(1, 7, size=(9, 12)).astype(np.float32)
    x[np.arange(12)[None, :] >= lengths[:, None]] = 0
    model = nncore.onnx.export(net)
    np.testing.assert_allclose(run_onnx(model, x), net.predict(x), rtol=1e-4, atol=1e-4)
