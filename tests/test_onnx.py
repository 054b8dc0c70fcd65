"""ONNX export: every layer and option, run by onnxruntime against network.predict.

Weights are random (biases, batch-norm statistics included) and images are
non-square with odd sizes, so a wrong transpose, padding side or flatten
order changes the numbers.  float64 networks export as float64 graphs; where
onnxruntime's CPU provider has no float64 kernel for an op the onnxruntime
test skips naming it, and onnx's reference evaluator checks that graph.
"""
import os
import re
import sys

import numpy as np
import pytest

import nncore
import nncore.onnx
from subprocess_helpers import run_outside_checkout
from nncore.activations import relu, relu_prime, sigmoid, sigmoid_prime, tanh, tanh_prime

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx.reference import ReferenceEvaluator  # noqa: E402

MLP_TOL = 1e-5          # float32, networks without image layers
CNN_TOL = 1e-4          # float32, networks with convolution or pooling
FLOAT64_TOL = 1e-12
BATCHES = (1, 7)


def mlp(*layers):
    return ("mlp", list(layers))


def cnn(*layers):
    return ("cnn", list(layers))


# name -> (input shape of one sample, kind, layer factory)
CASES = {
    "dense": ((7,), mlp(lambda: nncore.Dense(5))),
    "dense_no_bias": ((7,), mlp(lambda: nncore.Dense(5, use_bias=False))),
    "dense_nd": ((3, 7), mlp(lambda: nncore.Dense(5))),
    "dense_nd_no_bias": ((3, 7), mlp(lambda: nncore.Dense(5, use_bias=False))),
    **{f"dense_{name}": ((7,), mlp(lambda name=name: nncore.Dense(6, activation=name)))
       for name in ("identity", "linear", "tanh", "sigmoid", "relu", "leaky_relu", "softmax")},
    "dense_nd_softmax": ((3, 7), mlp(lambda: nncore.Dense(5, activation="softmax"))),
    "fclayer": ((1, 7), mlp(lambda: nncore.FCLayer(7, 5), lambda: nncore.FCLayer((1, 5), (1, 3)))),
    **{f"activation_{name}": ((3, 7), mlp(lambda name=name: nncore.Activation(name)))
       for name in ("identity", "linear", "tanh", "sigmoid", "relu", "leaky_relu", "softmax")},
    "activation_classes": ((7,), mlp(nncore.Tanh, lambda: nncore.Dense(6), nncore.Sigmoid,
                                     lambda: nncore.Dense(5), nncore.ReLU,
                                     lambda: nncore.Dense(4), nncore.Softmax)),
    "leaky_relu_alpha": ((7,), mlp(lambda: nncore.LeakyReLU(alpha=0.3))),
    "dense_fused_leaky_relu_alpha": ((7,), mlp(lambda: nncore.Dense(
        5, activation=nncore.LeakyReLU(0.3)))),
    "leaky_relu_alpha_above_1": ((7,), mlp(lambda: nncore.Activation("leaky_relu", alpha=2.5))),
    "activation_layer": ((1, 7), mlp(lambda: nncore.FCLayer(7, 6),
                                     lambda: nncore.ActivationLayer(tanh, tanh_prime),
                                     lambda: nncore.FCLayer(6, 5),
                                     lambda: nncore.ActivationLayer(sigmoid, sigmoid_prime),
                                     lambda: nncore.FCLayer(5, 4),
                                     lambda: nncore.ActivationLayer(relu, relu_prime))),
    "dropout": ((7,), mlp(lambda: nncore.Dense(6), lambda: nncore.Dropout(0.5),
                          lambda: nncore.Dense(3))),
    "only_dropout": ((7,), mlp(lambda: nncore.Dropout(0.5))),
    "batchnorm_rows": ((7,), mlp(lambda: nncore.BatchNormalization(epsilon=0.1))),
    "batchnorm_nd": ((1, 7), mlp(lambda: nncore.FCLayer(7, 5), nncore.BatchNormalization)),
    "flatten_nd": ((3, 5), mlp(nncore.Flatten, lambda: nncore.Dense(4))),
    "conv_valid": ((9, 7, 3), cnn(lambda: nncore.Conv2D(4, 3))),
    "conv_valid_strides": ((9, 8, 3), cnn(lambda: nncore.Conv2D(4, (3, 2), strides=(2, 3)))),
    "conv_same": ((9, 7, 3), cnn(lambda: nncore.Conv2D(4, 3, padding="same"))),
    "conv_same_even_kernel": ((7, 9, 2), cnn(lambda: nncore.Conv2D(3, (4, 2), padding="same"))),
    "conv_same_stride_2": ((8, 7, 3), cnn(lambda: nncore.Conv2D(5, 3, strides=2, padding="same"))),
    "conv_same_strides_2_1": ((6, 5, 2),
                              cnn(lambda: nncore.Conv2D(3, (4, 2), strides=(2, 1),
                                                        padding="same"))),
    "conv_int_padding": ((5, 6, 3), cnn(lambda: nncore.Conv2D(2, 3, strides=(1, 2),
                                                              padding=(1, 2)))),
    "conv_int_padding_strides": ((7, 6, 3), cnn(lambda: nncore.Conv2D(2, 3, strides=2,
                                                                      padding=1))),
    "conv_no_bias": ((9, 7, 3), cnn(lambda: nncore.Conv2D(4, 3, use_bias=False))),
    "conv_fused_leaky_relu_alpha": ((9, 7, 3), cnn(lambda: nncore.Conv2D(
        4, 3, activation=nncore.LeakyReLU(0.2)))),
    **{f"conv_{name}": ((9, 7, 3), cnn(lambda name=name: nncore.Conv2D(4, 3, activation=name)))
       for name in ("relu", "tanh", "sigmoid", "leaky_relu", "softmax", "linear")},
    "convlayer": ((9, 7, 3), cnn(lambda: nncore.ConvLayer((9, 7, 3), (3, 2), 4))),
    "softmax_on_images": ((9, 7, 3), cnn(lambda: nncore.Conv2D(4, 3), nncore.Softmax)),
    "max_pool": ((8, 6, 3), cnn(nncore.MaxPool2D)),
    "max_pool_strides": ((9, 7, 3), cnn(lambda: nncore.MaxPool2D(3, strides=2))),
    "max_pool_same": ((9, 7, 3), cnn(lambda: nncore.MaxPool2D(2, padding="same"))),
    "max_pool_same_strides": ((7, 8, 2), cnn(lambda: nncore.MaxPool2D((3, 2), strides=(2, 3),
                                                                       padding="same"))),
    "max_pool_int_padding": ((5, 7, 2), cnn(lambda: nncore.MaxPool2D(3, strides=2, padding=1))),
    "avg_pool": ((8, 6, 3), cnn(nncore.AvgPool2D)),
    "avg_pool_strides": ((9, 7, 3), cnn(lambda: nncore.AveragePooling2D(3, strides=2))),
    "avg_pool_same": ((9, 7, 3), cnn(lambda: nncore.AvgPool2D(2, padding="same"))),
    "avg_pool_same_strides": ((7, 8, 2), cnn(lambda: nncore.AvgPool2D((3, 2), strides=(2, 3),
                                                                       padding="same"))),
    "avg_pool_same_stride_1": ((5, 7, 3), cnn(lambda: nncore.AvgPool2D(3, strides=1,
                                                                        padding="same"))),
    "avg_pool_int_padding": ((5, 7, 2), cnn(lambda: nncore.AvgPool2D(3, strides=2,
                                                                      padding=(1, 2)))),
    "global_average": ((9, 7, 3), cnn(lambda: nncore.Conv2D(4, 3),
                                      nncore.GlobalAveragePooling2D,
                                      lambda: nncore.Dense(3))),
    "flatten_after_conv": ((9, 7, 3), cnn(lambda: nncore.Conv2D(4, 3), nncore.Flatten,
                                          lambda: nncore.Dense(5))),
    "flatten_image": ((5, 7, 3), cnn(nncore.Flatten, lambda: nncore.Dense(5))),
    "dense_on_images": ((5, 7, 3), cnn(lambda: nncore.Conv2D(4, 3, padding="same"),
                                       lambda: nncore.Dense(5, activation="tanh"))),
    "batchnorm_after_conv": ((9, 7, 3), cnn(lambda: nncore.Conv2D(4, 3), nncore.BatchNormalization,
                                            nncore.ReLU)),
    "batchnorm_on_images": ((9, 7, 3), cnn(nncore.BatchNormalization)),
    # augmentation: RandomCrop exports its inference form, the centre window
    # (odd margins: the corner rounds down); the others are left out
    "random_crop_input": ((9, 8, 2), cnn(lambda: nncore.RandomCrop(6, 3))),
    "random_crop_after_conv": ((9, 7, 3), cnn(lambda: nncore.Conv2D(4, 3),
                                              lambda: nncore.RandomCrop(4, 3),
                                              nncore.Flatten, lambda: nncore.Dense(5))),
    "augmentation": ((11, 9, 3), cnn(lambda: nncore.RandomFlip(),
                                     lambda: nncore.RandomTranslation(0.2, 0.1),
                                     lambda: nncore.RandomRotation(0.1),
                                     lambda: nncore.RandomZoom(0.2),
                                     lambda: nncore.GaussianNoise(0.5),
                                     lambda: nncore.RandomCrop(8, 7),
                                     lambda: nncore.Conv2D(4, 3), nncore.Flatten,
                                     lambda: nncore.Dense(3))),
    "article_conv": ((9, 7, 3), cnn(lambda: nncore.ConvLayer((9, 7, 3), (3, 3), 4),
                                    lambda: nncore.ActivationLayer(tanh, tanh_prime),
                                    nncore.FlattenLayer,
                                    lambda: nncore.FCLayer(7 * 5 * 4, 5),
                                    lambda: nncore.ActivationLayer(tanh, tanh_prime))),
    "everything": ((11, 9, 3), cnn(lambda: nncore.Conv2D(4, 3, strides=2, padding="same",
                                                         activation="relu"),
                                   nncore.BatchNormalization,
                                   lambda: nncore.AvgPool2D(3, strides=2, padding="same"),
                                   lambda: nncore.Conv2D(5, (2, 3), padding=(1, 2),
                                                         activation="leaky_relu"),
                                   lambda: nncore.MaxPool2D(2, padding="same"),
                                   nncore.Flatten,
                                   lambda: nncore.Dense(6, activation="sigmoid"),
                                   lambda: nncore.Dropout(0.3),
                                   lambda: nncore.Dense(3), nncore.Softmax)),
}


def randomize(net, seed=0):
    """Random biases and batch-norm parameters and statistics (the kernels are
    already random), so that a wrong bias or statistic changes the output."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        weights = [rng.uniform(-0.5, 0.5, w.shape) if w.dtype.kind == "f" and w.ndim == 1
                   else w for w in layer.get_weights()]
        if isinstance(layer, nncore.BatchNormalization):
            weights[0] = rng.uniform(0.5, 1.5, weights[0].shape)          # gamma
            weights[3] = rng.uniform(0.5, 2.0, weights[3].shape)          # moving variance
        layer.set_weights(weights)
    return net


def case_network(name, dtype):
    input_shape, (kind, factories) = CASES[name]
    net = nncore.Network([make() for make in factories], dtype=dtype, seed=1)
    net.build(input_shape)
    return randomize(net), kind


def tolerance(kind, dtype):
    if np.dtype(dtype) == np.float64:
        return FLOAT64_TOL
    return CNN_TOL if kind == "cnn" else MLP_TOL


def inputs(net, n, seed=2):
    return np.random.default_rng(seed).normal(size=(n,) + net.input_shape).astype(net.dtype)


def onnxruntime_session(model, dtype):
    """An onnxruntime session, or a skip naming the op that its CPU provider
    cannot run in float64."""
    try:
        return ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
    except Exception as error:
        missing = re.search(r"implementation for (\w+)\(\d+\) node with name '([^']*)'",
                            str(error))
        if np.dtype(dtype) == np.float64 and missing:
            pytest.skip(f"onnxruntime's CPU provider has no float64 kernel for "
                        f"{missing[1]} (node {missing[2]}); the reference test checks it")
        raise


def assert_matches(run, net, tol):
    for n in BATCHES:
        x = inputs(net, n)
        expected = net.predict(x)
        got = run(x)
        assert got.dtype == net.dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


def assert_onnxruntime_matches(net, tol, opset=nncore.onnx.DEFAULT_OPSET):
    model = nncore.onnx.export(net, opset=opset)
    onnx.checker.check_model(model, full_check=True)
    session = onnxruntime_session(model, net.dtype)
    assert_matches(lambda x: session.run(None, {"input": x})[0], net, tol)


def assert_reference_matches(net, tol):
    model = nncore.onnx.export(net)
    evaluator = ReferenceEvaluator(model)
    assert_matches(lambda x: evaluator.run(None, {"input": x})[0], net, tol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_matches_onnxruntime(name, dtype):
    net, kind = case_network(name, dtype)
    assert_onnxruntime_matches(net, tolerance(kind, dtype))


@pytest.mark.parametrize("name", sorted(CASES))
def test_float64_graph_matches_onnx_reference(name):
    net, _ = case_network(name, "float64")
    assert_reference_matches(net, FLOAT64_TOL)


# ------------------------------------------------- the README's networks, trained
def readme_mlp(dtype):
    return nncore.Network([nncore.Dense(128, activation="relu"), nncore.Dense(10)],
                          dtype=dtype, seed=0)


def readme_cnn(dtype):
    return nncore.Network([
        nncore.Conv2D(32, 3, activation="relu"), nncore.MaxPool2D(2),
        nncore.Conv2D(64, 3, activation="relu"), nncore.MaxPool2D(2),
        nncore.Flatten(), nncore.Dense(128, activation="relu"), nncore.Dropout(0.5),
        nncore.Dense(10)], dtype=dtype, seed=0)


def trained(net, input_shape, samples):
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (samples,) + input_shape)
    labels = rng.integers(0, 10, samples)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(x, labels, epochs=1, batch_size=32, learning_rate=0.05, verbose=0)
    return net


def test_readme_mlp_matches_onnxruntime(dtype):
    net = trained(readme_mlp(dtype), (784,), 256)
    assert_onnxruntime_matches(net, tolerance("mlp", dtype))


def test_readme_cnn_matches_onnxruntime(dtype):
    net = trained(readme_cnn(dtype), (28, 28, 1), 64)
    assert_onnxruntime_matches(net, tolerance("cnn", dtype))


def test_readme_cnn_float64_matches_onnx_reference():
    net = trained(readme_cnn("float64"), (28, 28, 1), 64)
    assert_reference_matches(net, FLOAT64_TOL)


def test_float32_copy_of_a_float64_cnn_runs_in_onnxruntime():
    net = trained(readme_cnn("float64"), (28, 28, 1), 64)
    copy = nncore.Network.from_config({**net.get_config(), "dtype": "float32"})
    copy.build()
    copy.set_weights(net.get_weights())
    session = onnxruntime_session(nncore.onnx.export(copy), copy.dtype)
    x = inputs(net, 7)
    np.testing.assert_allclose(session.run(None, {"input": x.astype(np.float32)})[0],
                               net.predict(x), rtol=CNN_TOL, atol=CNN_TOL)


def test_article_xor_network_matches_onnxruntime(dtype):
    x = np.array([[[0, 0]], [[0, 1]], [[1, 0]], [[1, 1]]])
    y = np.array([[[0]], [[1]], [[1]], [[0]]])
    net = nncore.Network(dtype=dtype, seed=0)
    net.add(nncore.FCLayer(2, 3)).add(nncore.ActivationLayer(tanh, tanh_prime))
    net.add(nncore.FCLayer(3, 1)).add(nncore.ActivationLayer(tanh, tanh_prime))
    net.use(nncore.losses.mse, nncore.losses.mse_prime)
    net.fit(x, y, epochs=200, learning_rate=0.1, verbose=0)
    assert_onnxruntime_matches(net, tolerance("mlp", dtype))


@pytest.mark.parametrize("opset", [nncore.onnx.MIN_OPSET, 15, 21])
def test_other_opsets(opset):
    net, kind = case_network("everything", "float32")
    assert_onnxruntime_matches(net, tolerance(kind, "float32"), opset=opset)
    assert nncore.onnx.export(net, opset=opset).opset_import[0].version == opset


def test_comparison_sees_a_small_weight_change():
    net, _ = case_network("flatten_after_conv", "float32")
    session = onnxruntime_session(nncore.onnx.export(net), net.dtype)
    net.layers[2].W[3, 1] += 1e-2
    x = inputs(net, 7)
    difference = np.abs(session.run(None, {"input": x})[0] - net.predict(x)).max()
    assert difference > 10 * CNN_TOL


# ------------------------------------------------------------ the model itself
def test_input_and_output_are_nhwc_with_a_dynamic_batch():
    net, _ = case_network("flatten_after_conv", "float32")
    model = nncore.onnx.export(net)
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
    assert graph_input.name == "input" and dims(graph_input) == ["batch", 9, 7, 3]
    assert graph_output.name == "output" and dims(graph_output) == ["batch", 5]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.producer_name == "nncore" and model.producer_version == nncore.__version__


def test_float64_network_gives_a_float64_graph():
    net, _ = case_network("dense", "float64")
    model = nncore.onnx.export(net)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.DOUBLE}


def test_ir_version_is_the_oldest_for_the_opset():
    net, _ = case_network("dense", "float32")
    assert nncore.onnx.export(net, opset=17).ir_version == 8
    assert nncore.onnx.export(net, opset=13).ir_version == 7


def test_node_names_say_which_layer():
    net, _ = case_network("flatten_after_conv", "float32")
    names = [node.name for node in nncore.onnx.export(net).graph.node]
    assert names[:2] == ["layer0_Conv2D/Transpose", "layer0_Conv2D/Conv"]
    assert "layer2_Dense/Gemm" in names


def test_dropout_and_identity_export_no_nodes():
    net, _ = case_network("only_dropout", "float32")
    assert [node.op_type for node in nncore.onnx.export(net).graph.node] == ["Identity"]


def test_writes_the_file(tmp_path):
    net, _ = case_network("everything", "float32")
    path = tmp_path / "model.onnx"
    path.write_bytes(b"an older model")
    model = nncore.onnx.export(net, path)
    assert onnx.load(str(path)) == model
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    net, _ = case_network("dense", "float32")
    path = tmp_path / "model.onnx"
    path.write_bytes(b"an older model")

    def failing_fsync(fd):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        nncore.onnx.export(net, path)
    assert path.read_bytes() == b"an older model"
    assert os.listdir(tmp_path) == ["model.onnx"]


# ----------------------------------------------------------------- refusals
class Scale(nncore.Layer):
    def forward(self, x, training=False):
        return 2 * x


def test_python_layer_is_refused_naming_it():
    net = nncore.Network([nncore.Dense(3), Scale()], input_shape=(4,)).build()
    with pytest.raises(ValueError, match=r"layer 1 \(Scale\) is not one of nncore's built-in"):
        nncore.onnx.export(net)


def test_subclass_of_a_builtin_layer_is_refused():
    class MyDense(nncore.Dense):
        pass
    net = nncore.Network([MyDense(3)], input_shape=(4,)).build()
    with pytest.raises(ValueError, match=r"layer 0 \(MyDense\)"):
        nncore.onnx.export(net)


def test_python_activation_function_is_refused_naming_it():
    def swish(x):
        return x * sigmoid(x)

    def swish_prime(x):
        return sigmoid(x) * (1 + x * (1 - sigmoid(x)))
    net = nncore.Network([nncore.FCLayer(4, 3), nncore.ActivationLayer(swish, swish_prime)],
                         input_shape=(1, 4)).build()
    with pytest.raises(ValueError, match=r"layer 1 \(ActivationLayer\) computes the Python "
                                         r"function 'swish'"):
        nncore.onnx.export(net)


def test_unbuilt_network_is_refused():
    with pytest.raises(RuntimeError, match="not built"):
        nncore.onnx.export(nncore.Network([nncore.Dense(3)]))


@pytest.mark.parametrize("opset", [12, 10_000, "17", 17.0, True])
def test_bad_opset_is_refused(opset):
    net, _ = case_network("dense", "float32")
    with pytest.raises(ValueError, match="opset must be an integer"):
        nncore.onnx.export(net, opset=opset)


def test_missing_onnx_package_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)     # makes `import onnx` fail
    net, _ = case_network("dense", "float32")
    with pytest.raises(ImportError, match=r'pip install "nncore\[onnx\]"'):
        nncore.onnx.export(net)


def test_import_nncore_does_not_import_onnx(tmp_path):
    code = "import sys, nncore; nncore.onnx.export; print('onnx' in sys.modules)"
    assert run_outside_checkout(code, tmp_path) == "False"



def test_export_reads_one_weight_version_while_another_thread_fits(tmp_path):
    """Export takes the guard save and copy take: while a fit runs in another
    thread it raises instead of mixing arrays of two steps; between fits,
    every exported array is the network's at that moment."""
    import threading
    net = nncore.Network([nncore.Dense(64, activation="relu"), nncore.Dense(3)],
                         input_shape=(4,), seed=0).use("mse")
    x = np.random.default_rng(0).normal(size=(4096, 4)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(4096, 3)).astype(np.float32)
    net.fit(x[:8], y[:8], verbose=0)
    done = threading.Event()
    failures = []

    def training():
        try:
            for _ in range(30):     # wait= lets the fit in between the exports
                net.fit(x, y, epochs=1, batch_size=32, verbose=0, wait=30)
        except BaseException as error:
            failures.append(error)
        finally:
            done.set()

    thread = threading.Thread(target=training)
    thread.start()
    refused = exported = 0
    try:
        while not done.is_set():
            try:
                model = nncore.onnx.export(net)
            except RuntimeError as error:     # a fit runs, or waits to run
                assert "fit is running" in str(error) or "is waiting" in str(error)
                refused += 1
                continue
            exported += 1
            arrays = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
            assert arrays
    finally:
        thread.join()
    assert not failures and refused > 0
    model = nncore.onnx.export(net, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    out = session.run(None, {"input": x[:16]})[0]
    np.testing.assert_allclose(out, net.predict(x[:16]), rtol=1e-4, atol=1e-5)
