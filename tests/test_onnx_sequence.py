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
