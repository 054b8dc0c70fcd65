"""The modern MNIST CNN trained on 5,000 images reaches >= 95% on the 10,000 test images."""
import contextlib
import importlib.util
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

import nncore
from conftest import MNIST_DIR

try:  # keep the shared test machine calm: one thread for BLAS and OpenMP if we can
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


def cnn(seed):
    return nncore.Network([nncore.Conv2D(32, 3, activation="relu"), nncore.MaxPool2D(2),
                           nncore.Conv2D(64, 3, activation="relu"), nncore.MaxPool2D(2),
                           nncore.Flatten(), nncore.Dense(128, activation="relu"),
                           nncore.Dense(10)], seed=seed)


def test_mnist_cnn_reaches_95_percent(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    x_train = x_train.reshape(-1, 28, 28, 1).astype(np.float32) / 255
    x_test = x_test.reshape(-1, 28, 28, 1).astype(np.float32) / 255
    net = cnn(seed=0)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True))
    limits = threadpool_limits(1) if threadpool_limits else contextlib.nullcontext()
    with limits:
        # plain mini-batch SGD, then one epoch at a lower rate to settle
        net.fit(x_train, y_train, epochs=3, batch_size=32, learning_rate=0.05, verbose=0)
        net.fit(x_train, y_train, epochs=1, batch_size=32, learning_rate=0.01, verbose=0)
        accuracy = np.mean(net.predict(x_test).argmax(axis=1) == y_test)
    assert accuracy >= 0.95, accuracy


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_augmented_example_trains_at_small_settings(mnist, tmp_path, capsys, monkeypatch):
    """examples/mnist_cnn.py --augment for 2 of its 50 epochs (the full run
    reaches about 98.7%, see docs/guide/convolution.md): the augmentation
    layers lead the network, train, and leave inference and the ONNX export."""
    if not (EXAMPLES / "mnist_cnn.py").is_file():     # tests copied out of the checkout
        pytest.skip("examples/ is not beside the tests")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    main = runpy.run_path(str(EXAMPLES / "mnist_cnn.py"), run_name="test")["main"]
    onnx_path = tmp_path / "cnn.onnx"
    export = ["--export-onnx", str(onnx_path)] if importlib.util.find_spec("onnx") else []
    limits = threadpool_limits(1) if threadpool_limits else contextlib.nullcontext()
    with limits:
        net, history = main(["--augment", "--epochs", "2", "--data", str(MNIST_DIR)] + export)
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", capsys.readouterr().out).group(1))
    assert accuracy >= 0.94, accuracy                    # 0.9620 measured
    assert [type(layer).__name__ for layer in net.layers[:3]] == [
        "RandomTranslation", "RandomRotation", "RandomZoom"]
    assert len(history.history["loss"]) == 2
    assert history.history["loss"][1] < history.history["loss"][0]
    (_, _), (x_test, _) = mnist
    x = x_test[:64].reshape(-1, 28, 28, 1).astype(np.float32) / 255
    expected = net.predict(x)
    np.testing.assert_array_equal(net.predict(x), expected)   # no augmentation at inference
    if export and importlib.util.find_spec("onnxruntime"):
        import onnxruntime
        session = onnxruntime.InferenceSession(str(onnx_path),
                                               providers=["CPUExecutionProvider"])
        assert not any(node.op_type in ("Slice", "Resize", "GridSample")
                       for node in __import__("onnx").load(str(onnx_path)).graph.node)
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
