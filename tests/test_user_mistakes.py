"""Ordinary mistakes a new user makes, and what nncore answers: a loss that
does not match the last layer, training-style surprises, an input shape that
is not kept, settings lost by saving, Keras habits, mistyped names, examples
that ignore their options."""
import copy
import os
import re
import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nncore
from nncore import losses, metrics, optimizers
from nncore.activations import tanh, tanh_prime

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def blobs(n=64, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(scale=3.0, size=(classes, features))
    x = (centres[labels] + rng.normal(size=(n, features))).astype(np.float32)
    return x, labels


def warnings_of(call):
    """The UserWarnings `call()` gives, every one of them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


# ------------------------------------------------------ loss vs last layer
def test_probability_loss_after_logits_warns_once_per_fit():
    x, y = blobs()
    net = nncore.Network([nncore.Dense(8, "relu"), nncore.Dense(3)], seed=0)
    net.use("sparse_categorical_crossentropy", optimizer="adam")
    found = warnings_of(lambda: net.fit(x, y, epochs=4, batch_size=8,
                                        validation_data=(x, y), verbose=0))
    assert len(found) == 1
    assert "SparseCategoricalCrossentropy(from_logits=False) expects probabilities" in found[0]
    assert "layer 1 (Dense)" in found[0] and "outside [0, 1]" in found[0]
    assert "from_logits=True" in found[0] and "Softmax layer" in found[0]


def test_the_warning_points_at_the_users_call():
    x, y = blobs()
    net = nncore.Network([nncore.Dense(3)], seed=0).use("sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match="expects probabilities") as fit_warnings:
        net.fit(x, y, epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="expects probabilities") as evaluate_warnings:
        net.evaluate(x, y)
    assert [w.filename for w in fit_warnings] == [__file__]
    assert [w.filename for w in evaluate_warnings] == [__file__]


def test_evaluate_checks_its_outputs_too():
    x, y = blobs()
    net = nncore.Network([nncore.Dense(3)], input_shape=(5,), seed=0)
    net.use("sparse_categorical_crossentropy")
    found = warnings_of(lambda: net.evaluate(x, y))
    assert len(found) == 1 and "layer 0 (Dense)" in found[0]


def test_binary_loss_after_logits_suggests_sigmoid():
    x, labels = blobs(classes=2)
    net = nncore.Network([nncore.Dense(1)], seed=0).use("binary_crossentropy")
    found = warnings_of(lambda: net.fit(x, labels[:, None], epochs=1, verbose=0))
    assert len(found) == 1
    assert "BinaryCrossentropy(from_logits=False) expects probabilities" in found[0]
    assert "Sigmoid layer" in found[0]


def test_categorical_rows_that_do_not_sum_to_one_warn():
    x, labels = blobs()
    net = nncore.Network([nncore.Dense(3, "sigmoid")], seed=0)
    net.use(losses.CategoricalCrossentropy())
    found = warnings_of(lambda: net.fit(x, nncore.utils.to_categorical(labels, 3),
                                        epochs=1, verbose=0))
    assert len(found) == 1 and "rows summing to" in found[0] and "not 1" in found[0]


@pytest.mark.parametrize("last, loss", [
    (nncore.Softmax(), losses.SparseCategoricalCrossentropy(from_logits=True)),
    (nncore.Dense(3, "softmax"), losses.SparseCategoricalCrossentropy(from_logits=True)),
    (nncore.Sigmoid(), losses.SparseCategoricalCrossentropy(from_logits=True)),
])
def test_logits_loss_after_softmax_or_sigmoid_warns(last, loss):
    x, y = blobs()
    net = nncore.Network([nncore.Dense(3), last], seed=0).use(loss)
    found = warnings_of(lambda: net.fit(x, y, epochs=2, verbose=0))
    assert len(found) == 1
    assert "SparseCategoricalCrossentropy(from_logits=True) expects logits" in found[0]
    assert f"layer 1 ({type(last).__name__})" in found[0]
    assert "from_logits=False" in found[0]


@pytest.mark.parametrize("layers, loss, target", [
    ([nncore.Dense(3), nncore.Softmax()], "sparse_categorical_crossentropy", "labels"),
    ([nncore.Dense(3, "softmax")], losses.CategoricalCrossentropy(), "onehot"),
    ([nncore.Dense(3)], losses.SparseCategoricalCrossentropy(from_logits=True), "labels"),
    ([nncore.Dense(1, "sigmoid")], "binary_crossentropy", "binary"),
    ([nncore.Dense(1)], losses.BinaryCrossentropy(from_logits=True), "binary"),
    ([nncore.Dense(3)], "mse", "onehot"),
])
def test_matching_loss_and_last_layer_do_not_warn(layers, loss, target):
    x, labels = blobs()
    y = {"labels": labels, "onehot": nncore.utils.to_categorical(labels, 3),
         "binary": (labels[:, None] > 0).astype(np.float32)}[target]
    net = nncore.Network(layers, seed=0).use(loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.fit(x, y, epochs=2, verbose=0)
        net.evaluate(x, y)


def test_output_check_runs_one_forward_pass_per_fit(monkeypatch):
    x, y = blobs(200)
    net = nncore.Network([nncore.Dense(3), nncore.Softmax()], seed=0)
    net.use("sparse_categorical_crossentropy")
    calls = []
    real = nncore.Network.predict

    def counted(self, inputs, *args, **kwargs):
        calls.append(len(inputs))
        return real(self, inputs, *args, **kwargs)

    monkeypatch.setattr(nncore.Network, "predict", counted)
    net.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert calls == [16]          # the first batch, once: nothing per step or epoch


# ---------------------------------------------------------- one mode rule
def test_learning_rate_does_not_switch_a_modern_network_to_article_mode(capsys):
    x, y = blobs(64)
    net = nncore.Network([nncore.Dense(8, "relu"), nncore.Dense(3)], seed=0)
    net.use(losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = net.fit(x, y, epochs=2, learning_rate=0.01, validation_split=0.25, verbose=2)
    out = capsys.readouterr().out
    assert "error=" not in out
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2 - 2 steps")   # batches of 32
    assert all(" - accuracy: " in line and " - val_loss: " in line
               and " - val_accuracy: " in line for line in lines)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_article_network_shows_requested_metrics_and_validation(capsys):
    x = np.array([[[0, 0]], [[0, 1]], [[1, 0]], [[1, 1]]] * 2, np.float32)
    y = np.array([[[0]], [[1]], [[1]], [[0]]] * 2, np.float32)
    net = nncore.Network(seed=0)
    for layer in (nncore.FCLayer(2, 3), nncore.ActivationLayer(tanh, tanh_prime),
                  nncore.FCLayer(3, 1), nncore.ActivationLayer(tanh, tanh_prime)):
        net.add(layer)
    net.use("mse", metrics=["mae"])       # a loss by name: the layers make it article-style
    history = net.fit(x, y, epochs=2, learning_rate=0.1, validation_data=(x, y))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for epoch, line in enumerate(lines):
        assert line == (f"epoch {epoch + 1}/2   error={history['loss'][epoch]:f}"
                        f"   mae={history['mae'][epoch]:f}"
                        f"   val_loss={history['val_loss'][epoch]:f}"
                        f"   val_mae={history['val_mae'][epoch]:f}")
    assert net.optimizer is None and len(history.epoch) == 2


def test_article_layers_train_per_sample_by_default():
    x = np.random.default_rng(0).normal(size=(10, 1, 2))
    y = np.random.default_rng(1).normal(size=(10, 1, 1))
    batches = []

    class Count(nncore.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            batches.append(logs["size"])

    article = nncore.Network([nncore.FCLayer(2, 1)], seed=0).use("mse")
    article.fit(x, y, epochs=1, verbose=0, callbacks=[Count()])
    assert batches == [1] * 10
    batches.clear()
    modern = nncore.Network([nncore.Dense(1)], seed=0).use("mse")
    modern.fit(x, y, epochs=1, learning_rate=0.1, verbose=0, callbacks=[Count()])
    assert batches == [10]


def test_fit_learning_rate_applies_to_the_call_only():
    x, y = blobs(64)

    def network(optimizer):
        net = nncore.Network([nncore.Dense(3)], seed=0)
        return net.use(losses.SparseCategoricalCrossentropy(from_logits=True),
                       optimizer=optimizer)

    adam = optimizers.Adam()
    overridden = network(adam)
    overridden.fit(x, y, epochs=2, learning_rate=0.05, verbose=0)
    assert adam.learning_rate == 0.001 and overridden.optimizer is adam
    reference = network(optimizers.Adam(0.05))
    reference.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(overridden.params, reference.params):
        assert a.tobytes() == b.tobytes()
    assert adam.iterations == 4     # its state carried on as usual
    # a schedule is put back as well
    schedule = nncore.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    scheduled = network(optimizers.SGD(schedule))
    scheduled.fit(x, y, epochs=1, learning_rate=0.5, verbose=0)
    assert scheduled.optimizer.learning_rate is schedule

    class Interrupt(nncore.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            assert self.network.trainer.learning_rate == 0.5     # the rate of the call
            assert self.network.optimizer.learning_rate == 0.001  # never written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        overridden.fit(x, y, epochs=2, learning_rate=0.5, callbacks=[Interrupt()], verbose=0)
    assert adam.learning_rate == 0.001      # put back however fit ends


# --------------------------------------------------- input_shape is a contract
def test_input_shape_builds_at_once():
    net = nncore.Network([nncore.Dense(4, "relu"), nncore.Dense(3)], input_shape=(5,), seed=0)
    assert net.built and [p.shape for p in net.params] == [(5, 4), (4,), (4, 3), (3,)]
    assert net.count_params() == 39
    text = net.summary(print_fn=None)
    assert "input (None, 5)" in text and "(None, 4)" in text and "(None, 3)" in text
    assert "Total params: 39" in text and "?" not in text


def test_input_shape_refuses_other_shapes():
    x, y = blobs(10, features=7)
    net = nncore.Network([nncore.Dense(3)], input_shape=(5,), seed=0)
    net.use(losses.SparseCategoricalCrossentropy(from_logits=True))
    message = r"layer 0 \(Dense\): expected input shape \(None, 5\), received \(10, 7\)"
    with pytest.raises(ValueError, match=message):
        net.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=message):
        net.predict(x)
    with pytest.raises(ValueError, match=r"layer 0 \(Dense\): expected input shape "
                                         r"\(None, 5\), received \(None, 7\)"):
        net.build((7,))
    assert net.params[0].shape == (5, 3)


def test_layers_added_to_a_declared_input_are_built_and_checked():
    net = nncore.Network(input_shape=(4,)).add(nncore.Dense(3))
    assert net.built and net.output_shape == (3,)
    with pytest.raises(ValueError, match=r"layer 1 \(FCLayer\): expected input shape "
                                         r"\(None, 5\), received \(None, 3\)"):
        net.add(nncore.FCLayer(5, 2))
    assert len(net.layers) == 1          # the refused layer is not kept
    net.add(nncore.Dense(2))
    assert net.output_shape == (2,) and net.count_params() == 4 * 3 + 3 + 3 * 2 + 2


def test_set_weights_on_a_declared_network_checks_everything():
    net = nncore.Network([nncore.Dense(4), nncore.Dense(3)], input_shape=(5,), seed=0)
    good = [np.ones(p.shape, np.float32) for p in net.params]
    with pytest.raises(ValueError, match="expected 4 arrays, received 3"):
        net.set_weights(good[:3])
    with pytest.raises(ValueError, match=r"layer 0 \(Dense\): weight 0 expected shape "
                                         r"\(5, 4\), received \(4, 5\)"):
        net.set_weights([good[0].T] + good[1:])
    with pytest.raises(TypeError, match=r"layer 1 \(Dense\): weight 1 expected dtype "
                                        r"float32, received complex128"):
        net.set_weights(good[:3] + [np.ones(3, complex)])
    assert not np.any(net.params[0] == 1)           # nothing changed on a mismatch
    net.set_weights(good)
    assert all(np.all(p == 1) for p in net.params)


def test_summary_shows_the_sizes_that_layers_state():
    net = nncore.Network(seed=0)
    for layer in (nncore.FCLayer(784, 100), nncore.ActivationLayer(tanh, tanh_prime),
                  nncore.FCLayer(100, 10)):
        net.add(layer)
    text = net.summary(print_fn=None)
    assert "unbuilt" not in text and "input (None, ..., 784)" in text
    assert "(None, ..., 100)" in text and "78,500" in text and "1,010" in text
    assert "Total params: 79,510" in text
    conv = nncore.Network([nncore.ConvLayer((28, 28, 1), (3, 3), 2), nncore.FlattenLayer(),
                           nncore.FCLayer(26 * 26 * 2, 10)])
    text = conv.summary(print_fn=None)
    assert "input (None, 28, 28, 1)" in text and "(None, 26, 26, 2)" in text and "(None, 1, 1352)" in text and "(None, 1, 10)" in text
    assert f"Total params: {3 * 3 * 2 + 2 + 1352 * 10 + 10:,}" in text
    modern = nncore.Network([nncore.Dense(8), nncore.Dense(2)]).summary(print_fn=None)
    assert "?" in modern and "depend on the input shape" in modern
    assert "input unknown until the first fit or predict" in modern


# -------------------------------------------------------------- settings survive
def trained_classifier():
    x, y = blobs(64)
    net = nncore.Network([nncore.Dense(6, "relu"), nncore.Dense(3)], seed=0)
    net.use(losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=optimizers.Adam(0.01),
            metrics=["accuracy", metrics.TopKAccuracy(2, sparse=True)])
    net.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return net, x, y


@pytest.mark.parametrize("route", ["file", "copy", "pickle", "deepcopy"])
def test_loss_optimizer_and_metrics_survive(route, tmp_path):
    net, x, y = trained_classifier()
    if route == "file":
        net.save(tmp_path / "net.nncore")
        twin = nncore.load(tmp_path / "net.nncore")
    elif route == "copy":
        twin = net.copy()
    elif route == "pickle":
        twin = pickle.loads(pickle.dumps(net))
    else:
        twin = copy.deepcopy(net)
    assert twin.evaluate(x, y) == net.evaluate(x, y)
    assert list(twin.evaluate(x, y)) == ["loss", "accuracy", "top_2_accuracy"]
    assert twin.loss.from_logits and isinstance(twin.optimizer, optimizers.Adam)
    assert twin.optimizer.learning_rate == 0.01
    assert twin.optimizer.iterations == net.optimizer.iterations == 8
    net.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    twin.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(net.params, twin.params):       # the Adam state came along
        assert a.tobytes() == b.tobytes()


def test_metric_functions_cannot_be_saved_and_say_so():
    def f1(y_true, y_pred):
        return 0.0

    net = nncore.Network([nncore.Dense(2)], input_shape=(3,)).use("mse", metrics=[f1])
    with pytest.raises(ValueError, match="the metric 'f1' is a Python function"):
        net.copy()


# ------------------------------------------------------------------ Keras habits
def test_compile_is_use_with_keras_keywords():
    x, y = blobs()
    net = nncore.Network([nncore.Dense(3)], seed=0)
    assert net.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"]) is net
    assert isinstance(net.optimizer, optimizers.Adam)
    assert isinstance(net.loss, losses.SparseCategoricalCrossentropy)
    assert net.metrics == ["accuracy"]
    net.compile("sgd", "mse")                         # Keras' positional order
    assert isinstance(net.optimizer, optimizers.SGD) and isinstance(net.loss, losses.MSE)
    with pytest.raises(ValueError, match="compile: give a loss"):
        net.compile(optimizer="adam")


def test_evaluate_return_dict_and_verbose():
    x, y = blobs()
    net = nncore.Network([nncore.Dense(3)], input_shape=(5,), seed=0)
    net.use(losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    scores = net.evaluate(x, y, return_dict=True, verbose=0)
    assert list(scores) == ["loss", "accuracy"]
    assert net.evaluate(x, y, return_dict=False) == [scores["loss"], scores["accuracy"]]
    net.use(losses.SparseCategoricalCrossentropy(from_logits=True))
    assert net.evaluate(x, y, return_dict=False) == scores["loss"]


def test_predict_accepts_keras_verbose():
    x, _ = blobs()
    net = nncore.Network([nncore.Dense(3)], input_shape=(5,), seed=0)
    expected = net.predict(x)
    for verbose in (0, 1, 2, "auto"):
        assert np.array_equal(net.predict(x, verbose=verbose), expected)
    with pytest.raises(ValueError, match="verbose must be 0, 1, 2 or 'auto', got 3"):
        net.predict(x, verbose=3)


def test_count_params():
    net = nncore.Network([nncore.Dense(4), nncore.Dense(2, use_bias=False)], input_shape=(3,))
    assert net.count_params() == 3 * 4 + 4 + 4 * 2
    with pytest.raises(RuntimeError, match="count_params: the network is not built yet"):
        nncore.Network([nncore.Dense(4)]).count_params()


def test_save_weights_and_load_weights(tmp_path):
    net, x, _ = trained_classifier()
    path = tmp_path / "weights.nncore"
    net.save_weights(path)
    with zipfile.ZipFile(path) as archive:           # the model file's container
        assert sorted(archive.namelist()) == ["nncore.json"] + \
            sorted(f"w{i}.npy" for i in range(4))
    fresh = nncore.Network([nncore.Dense(6, "relu"), nncore.Dense(3)], input_shape=(5,),
                           seed=1)
    fresh.load_weights(path)
    assert np.array_equal(fresh.predict(x), net.predict(x))
    assert fresh.loss is None and fresh.optimizer is None     # arrays only

    other = nncore.Network([nncore.Dense(7, "relu"), nncore.Dense(3)], input_shape=(5,))
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"layer 0 \(Dense\): weight 0 expected shape "
                                         r"\(5, 7\), received \(5, 6\)"):
        other.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(before, other.get_weights()))
    with pytest.raises(ValueError, match="holds the weights of 2 layers, the network has 1"):
        nncore.Network([nncore.Dense(3)], input_shape=(5,)).load_weights(path)
    with pytest.raises(RuntimeError, match="load_weights: the network is not built yet"):
        nncore.Network([nncore.Dense(3)]).load_weights(path)


def test_weights_files_refuse_model_files_and_damage(tmp_path):
    net, _, _ = trained_classifier()
    net.save(tmp_path / "model.nncore")
    with pytest.raises(nncore.ModelFormatError, match="model file, not a weights file"):
        net.load_weights(tmp_path / "model.nncore")
    net.save_weights(tmp_path / "w.nncore")
    data = (tmp_path / "w.nncore").read_bytes()
    (tmp_path / "cut.nncore").write_bytes(data[:len(data) // 2])
    with pytest.raises(nncore.ModelFormatError):
        net.load_weights(tmp_path / "cut.nncore")
    with zipfile.ZipFile(tmp_path / "evil.nncore", "w") as archive:
        archive.writestr("nncore.json", b'{"magic": "nncore.weights", "format_version": 1, '
                                        b'"nncore_version": "0", "weights": [[{"member": '
                                        b'"w0.npy", "dtype": "|O", "shape": [1]}]]}')
        archive.writestr("w0.npy", b"")
    with pytest.raises(nncore.ModelFormatError, match="not allowed"):
        net.load_weights(tmp_path / "evil.nncore")
    (tmp_path / "text.nncore").write_text("hello")
    with pytest.raises(nncore.ModelFormatError, match="not a zip archive"):
        net.load_weights(tmp_path / "text.nncore")


@pytest.mark.parametrize("name", ["model.keras", "model.h5", "MODEL.HDF5", "w.weights.h5"])
def test_keras_file_names_are_refused(name, tmp_path):
    net = nncore.Network([nncore.Dense(2)], input_shape=(3,)).use("mse")
    for save in (net.save, net.save_weights, nncore.callbacks.ModelCheckpoint):
        with pytest.raises(ValueError, match="Keras file extension.*nncore writes its own "
                                             "format, which Keras cannot read"):
            save(tmp_path / name)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("call, suggestion", [
    (lambda: nncore.Network([nncore.Dense(2)]).use("sparse_categorical_crossentropyy"),
     "unknown loss 'sparse_categorical_crossentropyy'; did you mean "
     "'sparse_categorical_crossentropy'"),
    (lambda: nncore.Network([nncore.Dense(2)]).use("SparseCategoricalCrossentropy"),
     "did you mean 'sparse_categorical_crossentropy'"),
    (lambda: nncore.Network([nncore.Dense(2)]).use("mse", optimizer="adma"),
     "unknown optimizer 'adma'; did you mean 'adam'"),
    (lambda: nncore.Network([nncore.Dense(2)]).use("mse", metrics=["acuracy"]),
     "unknown metric 'acuracy'; did you mean 'accuracy'"),
    (lambda: nncore.Dense(2, activation="rellu"),
     "Dense: unknown activation 'rellu'; did you mean 'relu'"),
    (lambda: nncore.Activation("sigmoud"), "did you mean 'sigmoid'"),
    (lambda: nncore.Conv2D(2, 3, activation="Relu"), "did you mean 'relu'"),
    (lambda: nncore.Dense(2, kernel_initializer="glorot_unifrom"),
     "unknown initializer 'glorot_unifrom'; did you mean 'glorot_uniform'"),
    (lambda: nncore.registry.lookup("layer", "Dens"),
     "unknown layer class 'Dens'; did you mean 'Dense'"),
])
def test_unknown_names_suggest_the_closest(call, suggestion):
    with pytest.raises(ValueError) as raised:
        call()
    assert suggestion in str(raised.value)
    assert "choose one of" in str(raised.value)


def test_keras_metric_names_are_understood():
    x, y = blobs()
    net = nncore.Network([nncore.Dense(3)], input_shape=(5,), seed=0)
    net.use(losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["sparse_categorical_accuracy"])
    assert net.evaluate(x, y)["accuracy"] == pytest.approx(
        np.mean(net.predict(x).argmax(1) == y))


# --------------------------------------------------------------- History.plot
@pytest.fixture
def agg():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    yield plt
    plt.close("all")


def test_history_plot_returns_a_figure_with_axes_per_quantity(agg, tmp_path):
    from matplotlib.figure import Figure
    history = nncore.callbacks.History()
    for epoch in range(3):
        history.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "accuracy": 0.5 + epoch / 10,
                                     "val_loss": 1.2 / (epoch + 1),
                                     "val_accuracy": 0.4 + epoch / 10})
    figure = history.plot()
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    for ax, name in zip(figure.axes, ["loss", "accuracy"]):
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == [name, "val_" + name]
        assert lines[0].get_color() == lines[1].get_color()
        assert lines[0].get_linestyle() != lines[1].get_linestyle()
        assert list(lines[0].get_xdata()) == [1, 2, 3]
    figure.canvas.draw()
    ticks = figure.axes[-1].get_xticks()
    assert len(ticks) and all(float(t).is_integer() for t in ticks)
    path = tmp_path / "curves.png"
    assert isinstance(history.plot(path), Figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(history.plot(keys=["accuracy"]).axes) == 1
    with pytest.raises(ValueError, match=r"nothing recorded for \['f1'\]; recorded: "
                                         r"\['accuracy', 'loss', 'val_accuracy', 'val_loss'\]"):
        history.plot(keys=["f1"])
    with pytest.raises(ValueError, match="nothing recorded yet; fit the network first"):
        nncore.callbacks.History().plot()


# ------------------------------------------------------------------- examples
def run_example(name, *args, env=None, timeout=120):
    if not (EXAMPLES / name).is_file():   # tests copied out of the checkout
        pytest.skip(f"examples/{name} is not beside the tests")
    environment = dict(os.environ, **(env or {}))
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(Path(nncore.__file__).resolve().parents[1])] +
        [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", ["xor.py", "demo.py", "mnist_fc.py", "mnist_cnn.py",
                                  "mnist_conv.py"])
def test_examples_answer_help_without_running(name):
    result = run_example(name, "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
    assert not any(word in result.stdout for word in ("XOR:", "->", "error=", "test accuracy"))
    if name.startswith("mnist"):
        assert "--data DIR" in result.stdout and "NNCORE_MNIST_DIR" in result.stdout


@pytest.mark.parametrize("name", ["mnist_fc.py", "mnist_cnn.py", "mnist_conv.py"])
def test_mnist_examples_name_both_ways_to_find_the_data(name, tmp_path):
    result = run_example(name, "--data", str(tmp_path / "absent"), timeout=60)
    assert result.returncode == 2
    assert f"no MNIST IDX files in {tmp_path / 'absent'} (from --data)" in result.stderr
    assert "NNCORE_MNIST_DIR" in result.stderr
    result = run_example(name, env={"NNCORE_MNIST_DIR": str(tmp_path / "elsewhere")},
                         timeout=60)
    assert result.returncode == 2
    assert f"in {tmp_path / 'elsewhere'} (from NNCORE_MNIST_DIR)" in result.stderr
    assert "--data DIR" in result.stderr


def write_idx(path, array):
    """An uncompressed IDX file of uint8 `array`."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(array, np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    """A directory of MNIST IDX files with 30 training and 10 test images."""
    directory = tmp_path / "mnist"
    directory.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return directory


@pytest.mark.parametrize("name", ["mnist_fc.py", "mnist_cnn.py", "mnist_conv.py"])
def test_mnist_examples_document_their_options(name):
    result = run_example(name, "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    description = result.stdout.split("\n\n")[1]
    assert description.rstrip().endswith(".")
    assert re.search(r"--epochs EPOCHS\s+passes over the", result.stdout)


@pytest.mark.parametrize("name", ["mnist_cnn.py", "mnist_conv.py"])
def test_mnist_examples_train_for_the_epochs_asked(name, tiny_mnist):
    result = run_example(name, "--data", str(tiny_mnist), "--epochs", "2", timeout=300)
    assert result.returncode == 0, result.stderr
    counts = re.findall(r"[Ee]poch (\d+)/(\d+)", result.stdout)
    assert counts and {total for _, total in counts} == {"2"}
    assert [int(done) for done, _ in counts][-1] == 2
    result = run_example(name, "--data", str(tiny_mnist), "--epochs", "0", timeout=60)
    assert result.returncode == 2 and "--epochs must be at least 1" in result.stderr


@pytest.mark.parametrize("name, args", [
    ("mnist_fc.py", ["--epochs", "1"]), ("mnist_cnn.py", ["--epochs", "1"]),
    ("mnist_conv.py", ["--epochs", "3"])])
def test_mnist_examples_run_on_the_data_they_are_given(name, args, tiny_mnist):
    result = run_example(name, "--data", str(tiny_mnist), *args, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    if name == "mnist_fc.py":     # the summary shows the sizes FCLayer states
        assert "(None, ..., 100)" in result.stdout and "Total params: 84,060" in result.stdout
    result = run_example(name, *args, env={"NNCORE_MNIST_DIR": str(tiny_mnist)}, timeout=300)
    assert result.returncode == 0, result.stderr


def test_xor_example_runs():
    result = run_example("xor.py", "--epochs", "1000")
    assert result.returncode == 0, result.stderr
    values = [float(line.split("->")[1]) for line in result.stdout.splitlines()]
    assert np.array_equal(np.round(values), [0, 1, 1, 0])


def test_demo_prints_the_warm_xor_time_beside_the_first():
    pytest.importorskip("sklearn")
    result = run_example("demo.py", "--epochs", "2")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("XOR:"))
    assert " ms warm (" in line and "ms for the first call" in line


@pytest.mark.parametrize("python_layer", [False, True])
def test_layers_swapped_by_hand_after_building_get_an_error_not_a_crash(python_layer):
    # the optimizer keeps state per parameter array: when the arrays change
    # behind its back, its step refuses instead of writing past its state
    class Identity(nncore.Layer):
        def forward(self, x, training=False):
            return x

        def backward(self, dy):
            return dy

    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(128, 6)), rng.normal(size=(128, 4))
    middle = [Identity()] if python_layer else []
    net = nncore.Network([nncore.Dense(8)] + middle + [nncore.Dense(4)], input_shape=(6,),
                         dtype="float64", seed=4)
    net.use("mse", optimizer="adam")
    net.fit(x, y, epochs=1, batch_size=64, verbose=0)
    net.layers[0] = nncore.Dense(8)               # unbuilt, swapped in by hand
    with pytest.raises(ValueError, match="layers replaced after the network was built"):
        net.fit(x, y, epochs=1, batch_size=64, verbose=0)
