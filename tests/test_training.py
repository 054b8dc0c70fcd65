"""fit / evaluate / callbacks / History / progress output / NaN detection."""
import io
import math

import numpy as np
import pytest

import nncore
from nncore import callbacks, losses, metrics, optimizers, schedules


def blobs(n=300, seed=0, classes=3, features=4):
    """A fixed, learnable classification problem."""
    centers = np.random.default_rng(100).normal(scale=3, size=(classes, features))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = centers[labels] + rng.normal(size=(n, features))
    return x.astype(np.float32), labels


def classifier(seed=0, optimizer=None, metrics_=("accuracy",), dtype="float32"):
    net = nncore.Network([nncore.Dense(16, "relu"), nncore.Dense(3)], seed=seed, dtype=dtype)
    net.use(losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=optimizer or optimizers.Adam(0.01), metrics=list(metrics_))
    return net


# ------------------------------------------------------------------ optimizers
def test_adam_reaches_lower_loss_than_sgd():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = np.sin(x @ rng.normal(size=(8, 1))).astype(np.float32)
    final = {}
    for name, opt in [("sgd", optimizers.SGD(0.01)), ("adam", optimizers.Adam(0.01))]:
        net = nncore.Network([nncore.Dense(32, "tanh"), nncore.Dense(1)], seed=0)
        net.use("mse", optimizer=opt)
        final[name] = net.fit(x, y, epochs=20, batch_size=32, verbose=0)["loss"][-1]
    assert final["adam"] < 0.5 * final["sgd"]


def test_schedule_drives_the_fused_sgd_steps(dtype):
    # full-batch linear regression: compare with plain NumPy SGD at the
    # scheduled rates 0.1, 0.1, 0.05, 0.05, 0.025
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3))
    y = rng.normal(size=(8, 1))
    net = nncore.Network([nncore.Dense(1)], seed=0, dtype=dtype)
    opt = optimizers.SGD(schedules.StepDecay(0.1, step_size=2, factor=0.5))
    net.use("mse", optimizer=opt)
    net.build((3,))
    W, b = net.layers[0].W.astype(np.float64), net.layers[0].b.astype(np.float64)
    x_, y_ = x.astype(dtype).astype(np.float64), y.astype(dtype).astype(np.float64)
    for rate in [0.1, 0.1, 0.05, 0.05, 0.025]:
        err = 2 * (x_ @ W + b - y_) / len(x_)
        W, b = W - rate * x_.T @ err, b - rate * err.sum(0)
    net.fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0)
    assert opt.iterations == 5
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(net.layers[0].W, W, rtol=tol, atol=tol)
    np.testing.assert_allclose(net.layers[0].b, b, rtol=tol, atol=tol)


def test_iterations_continue_across_fit_calls():
    x, y = blobs(64)
    net = classifier(metrics_=())
    net.fit(x, y, epochs=2, batch_size=16, verbose=0)
    net.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert net.optimizer.iterations == 5 * 4


# ---------------------------------------------------------- history, validation
def test_history_and_validation_metrics():
    x, y = blobs(300)
    xv, yv = blobs(100, seed=1)
    net = classifier()
    history = net.fit(x, y, epochs=4, batch_size=32, validation_data=(xv, yv), verbose=0)
    assert history is net.history
    assert history.epoch == [0, 1, 2, 3]
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 4 for v in history.history.values())
    # the last validation values are those of the final weights
    scores = net.evaluate(xv, yv)
    assert history["val_loss"][-1] == pytest.approx(scores["loss"], rel=1e-6)
    assert history["val_accuracy"][-1] == pytest.approx(scores["accuracy"])
    manual = np.mean(net.predict(xv).argmax(-1) == yv)
    assert scores["accuracy"] == pytest.approx(manual)
    np.testing.assert_array_equal(net.predict_classes(xv), net.predict(xv).argmax(-1))
    assert history["accuracy"][-1] > 0.9
    # training loss of an epoch is the sample-weighted mean of its batch losses
    assert 0 < history["loss"][-1] < history["loss"][0]


def test_training_metrics_are_running_means_over_the_epoch():
    # with a learning rate of ~0 the weights do not move, so the epoch's
    # running accuracy must equal the accuracy of the fixed network
    x, y = blobs(100)
    net = classifier(optimizer=optimizers.SGD(1e-30, momentum=0.5))
    history = net.fit(x, y, epochs=1, batch_size=7, verbose=0)
    assert history["accuracy"][0] == pytest.approx(np.mean(net.predict_classes(x) == y))
    assert history["loss"][0] == pytest.approx(net.evaluate(x, y)["loss"], rel=1e-5)


def test_validation_split_holds_out_the_tail():
    x, y = blobs(200)
    net = classifier()
    history = net.fit(x, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0)
    assert history["val_loss"][-1] == pytest.approx(net.evaluate(x[150:], y[150:])["loss"],
                                                    rel=1e-6)
    with pytest.raises(ValueError, match="validation_split"):
        net.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="not both"):
        net.fit(x, y, validation_split=0.2, validation_data=(x, y), verbose=0)


def test_initial_epoch():
    x, y = blobs(64)
    history = classifier().fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert history.epoch == [3, 4] and len(history["loss"]) == 2


def test_python_path_with_metrics_matches_native():
    # a loss given as user functions runs the per-layer Python loop
    def my_mse(y_true, y_pred):
        return np.mean((y_pred - y_true) ** 2)

    def my_mse_prime(y_true, y_pred):
        return 2 * (y_pred - y_true) / y_true.size

    x = np.random.default_rng(0).normal(size=(40, 3))
    y = (x.sum(1, keepdims=True) > 0).astype(np.float64)
    results = []
    for loss in (("mse",), (my_mse, my_mse_prime)):
        net = nncore.Network([nncore.Dense(4, "tanh"), nncore.Dense(1)], seed=2, dtype="float64")
        net.use(*loss, optimizer=optimizers.Adam(0.01), metrics=["mae"])
        results.append(net.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0).history)
    assert isinstance(net.loss, nncore.article.FunctionLoss)
    for key in ("loss", "mae"):
        np.testing.assert_allclose(results[0][key], results[1][key], rtol=1e-10)


# ------------------------------------------------------------------ callbacks
class Scripted(callbacks.Callback):
    """Puts a scripted 'score' into the logs and snapshots the weights."""

    def __init__(self, scores):
        self.scores = scores
        self.snapshots = []

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]
        self.snapshots.append([p.copy() for p in self.network.params])


def test_early_stopping_stops_at_the_right_epoch_and_restores_best():
    x, y = blobs(64)
    net = classifier()
    script = Scripted([5.0, 4.0, 3.0, 3.5, 3.2, 1.0, 0.5])
    stop = callbacks.EarlyStopping(monitor="score", patience=2, restore_best_weights=True)
    history = net.fit(x, y, epochs=7, batch_size=16, callbacks=[script, stop], verbose=0)
    # best at epoch 2; epochs 3 and 4 do not improve -> stop after epoch 4
    assert stop.stopped_epoch == 4 and stop.best_epoch == 2
    assert history.epoch == [0, 1, 2, 3, 4]
    for p, best in zip(net.params, script.snapshots[2]):
        np.testing.assert_array_equal(p, best)
    assert not np.array_equal(net.params[0], script.snapshots[4][0])


def test_early_stopping_on_val_loss_keeps_best_validation_weights():
    # random labels: the network overfits and val_loss rises
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    xv = rng.normal(size=(64, 10)).astype(np.float32)
    yv = rng.integers(0, 3, 64)
    net = nncore.Network([nncore.Dense(64, "relu"), nncore.Dense(3)], seed=0)
    net.use(losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=optimizers.Adam(0.01))
    stop = callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    history = net.fit(x, y, epochs=200, batch_size=16, validation_data=(xv, yv),
                      callbacks=[stop], verbose=0)
    assert stop.stopped_epoch is not None and len(history.epoch) < 200
    assert stop.stopped_epoch == stop.best_epoch + 3
    assert net.evaluate(xv, yv)["loss"] == pytest.approx(min(history["val_loss"]), rel=1e-6)


def test_learning_rate_scheduler_and_csv_logger(tmp_path):
    x, y = blobs(64)
    net = classifier(optimizer=optimizers.SGD(0.1))
    seen = []

    class Rates(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(net.training_optimizer.learning_rate)

    path = tmp_path / "log.csv"
    history = net.fit(x, y, epochs=3, batch_size=16, verbose=0,
                      callbacks=[callbacks.LearningRateScheduler(lambda e, lr: 0.1 / (e + 1)),
                                 Rates(), callbacks.CSVLogger(path)])
    assert seen == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert history["learning_rate"] == pytest.approx(seen)
    rows = path.read_text().splitlines()
    assert rows[0] == "epoch,accuracy,learning_rate,loss" and len(rows) == 4
    assert float(rows[3].split(",")[3]) == pytest.approx(history["loss"][2])


def test_model_checkpoint_saves_through_network_save(tmp_path, monkeypatch):
    # Network.save comes from the saving module; a stand-in records the calls
    saved = []
    monkeypatch.setattr(nncore.Network, "save", lambda self, path: saved.append(path),
                        raising=False)
    x, y = blobs(64)
    net = classifier()
    script = Scripted([3.0, 2.0, 2.5, 1.0])
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{score:.1f}"),
                                           monitor="score", save_best_only=True)
    net.fit(x, y, epochs=4, batch_size=16, callbacks=[script, checkpoint], verbose=0)
    assert saved == [str(tmp_path / n) for n in ("m-01-3.0", "m-02-2.0", "m-04-1.0")]
    every = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}"))
    saved.clear()
    net.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, callbacks=[every], verbose=0)
    assert len(saved) == 2


def test_batch_callbacks_see_every_batch():
    x, y = blobs(50)
    batches = []

    class Batches(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            batches.append((batch, logs["size"]))

    classifier(metrics_=()).fit(x, y, epochs=2, batch_size=16, callbacks=[Batches()],
                                verbose=0)
    assert batches == [(0, 16), (1, 16), (2, 16), (3, 2)] * 2


# ------------------------------------------------------------------ NaN / inf
def diverging(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=1e3, size=(64, 4)).astype(np.float32)
    y = rng.normal(scale=1e3, size=(64, 1)).astype(np.float32)
    net = nncore.Network([nncore.Dense(8), nncore.Dense(1)], seed=seed)
    net.use("mse", optimizer=optimizers.SGD(10.0))
    return net, x, y


def test_nan_loss_raises_naming_epoch_and_batch():
    net, x, y = diverging()
    with pytest.raises(FloatingPointError, match=r"at epoch (\d+)/50, batch (\d+)/8") as info:
        net.fit(x, y, epochs=50, batch_size=8, verbose=0)
    # the same run, step by step, finds the first non-finite loss at that place
    net, x, y = diverging()
    losses_seen = []

    class Record(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            losses_seen.append(logs["loss"])

    history = net.fit(x, y, epochs=50, batch_size=8, verbose=0,
                      callbacks=[Record(), callbacks.TerminateOnNaN()])
    assert not math.isfinite(losses_seen[-1]) and all(map(math.isfinite, losses_seen[:-1]))
    step = len(losses_seen) - 1
    assert f"at epoch {step // 8 + 1}/50, batch {step % 8 + 1}/8" in str(info.value)
    assert len(history.epoch) == step // 8


# ------------------------------------------------------------- progress output
def test_progress_on_a_non_terminal_is_one_line_per_epoch(capsys):
    x, y = blobs(100)
    for verbose in (1, 2):
        classifier().fit(x, y, epochs=3, batch_size=10, validation_split=0.2, verbose=verbose)
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert len(lines) == 3 and "\r" not in out and "\x1b" not in out
        for i, line in enumerate(lines):
            assert line.startswith(f"Epoch {i + 1}/3 - 8 steps - ")
            assert "samples/s" in line and " - loss: " in line and " - val_accuracy: " in line
    classifier().fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_progress_bar_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    monkeypatch.setattr("sys.stdout", stream)
    x, y = blobs(100)
    classifier().fit(x, y, epochs=2, batch_size=10, verbose=1)
    text = stream.getvalue()
    assert text.startswith("Epoch 1/2\n") and "\r10/10 [" in text
    assert "Epoch 2/2\n" in text and text.endswith("\n")
    final = [line for line in text.split("\n") if "10/10 [" in line]
    assert len(final) == 2 and all("=" * 30 in line and "loss:" in line for line in final)


def test_article_style_keeps_error_line(capsys):
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    net = nncore.Network([nncore.FCLayer(2, 3), nncore.Tanh(), nncore.FCLayer(3, 1)], seed=0)
    net.use(nncore.losses.mse, nncore.losses.mse_prime)    # the article's loss functions
    history = net.fit(x, y, epochs=3, learning_rate=0.1)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"epoch {i}/3   error={history['loss'][i - 1]:f}" for i in (1, 2, 3)]


# ------------------------------------------------------------- reproducibility
def test_same_seed_gives_bit_identical_weights():
    x, y = blobs(200)
    runs = []
    for _ in range(2):
        net = classifier(seed=7, optimizer=optimizers.Adam(0.01), metrics_=())
        net.fit(x, y, epochs=3, batch_size=16, verbose=0)
        runs.append([p.copy() for p in net.params])
    for a, b in zip(*runs):
        assert a.tobytes() == b.tobytes()
    other = classifier(seed=8, metrics_=())
    other.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert other.params[0].tobytes() != runs[0][0].tobytes()


# --------------------------------------------------------------------- metrics
def test_metric_variants_and_values():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 6))
    labels = rng.integers(0, 6, 50)
    onehot = nncore.utils.to_categorical(labels, 6)
    ce = losses.CategoricalCrossentropy()
    assert isinstance(metrics.get("accuracy", ce, False, 6), metrics.CategoricalAccuracy)
    assert isinstance(metrics.get("acc", ce, True, 6), metrics.SparseCategoricalAccuracy)
    binary = metrics.get("accuracy", losses.BinaryCrossentropy(from_logits=True), False, 1)
    assert isinstance(binary, metrics.BinaryAccuracy) and binary.threshold == 0.0
    want = np.mean(scores.argmax(1) == labels)
    assert metrics.CategoricalAccuracy()(onehot, scores) == pytest.approx(want)
    assert metrics.SparseCategoricalAccuracy()(labels, scores) == pytest.approx(want)
    top3 = np.mean([labels[i] in np.argsort(-scores[i])[:3] for i in range(50)])
    assert metrics.TopKAccuracy(3)(onehot, scores) == pytest.approx(top3)
    assert metrics.TopKAccuracy(3, sparse=True)(labels, scores) == pytest.approx(top3)
    assert metrics.MeanAbsoluteError()(onehot, scores) == pytest.approx(
        np.abs(onehot - scores).mean())
    probs = rng.uniform(size=(40, 1))
    truth = rng.integers(0, 2, (40, 1))
    assert metrics.BinaryAccuracy()(truth, probs) == pytest.approx(
        np.mean((probs > 0.5) == truth))
    with pytest.raises(ValueError, match="unknown metric"):
        nncore.Network([nncore.Dense(2)]).use("mse", metrics=["f1"])


def test_history_plot_needs_matplotlib():
    history = callbacks.History()
    history.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    try:
        import matplotlib
    except ImportError:
        with pytest.raises(ImportError, match=r"nncore\[plot\]"):
            history.plot()
    else:
        matplotlib.use("Agg")
        figure = history.plot()
        assert [line.get_label() for line in figure.axes[0].get_lines()] == \
            ["loss", "val_loss"]


# -------------------------------------------------------------------- MNIST MLP
def test_mnist_mlp_with_adam_reaches_93_percent(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    x_train = x_train.reshape(len(x_train), -1).astype(np.float32) / 255
    x_test = x_test.reshape(len(x_test), -1).astype(np.float32) / 255
    net = nncore.Network([nncore.Dense(256, "relu"), nncore.Dense(128, "relu"),
                          nncore.Dense(10)], seed=0)
    net.use(losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam",
            metrics=["accuracy"])
    net.fit(x_train, y_train, epochs=10, batch_size=32, verbose=0)
    assert net.evaluate(x_test, y_test)["accuracy"] >= 0.93
