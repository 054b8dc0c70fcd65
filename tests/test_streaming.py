"""fit, evaluate and predict over data that arrives in blocks: sequences and
iterables of (x, y[, w]) batches, generators, and dask arrays on dask's
local scheduler."""
import numpy as np
import pytest

import nncore
from nncore import callbacks, losses


def data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    y = (x[:, 0] - x[:, 2] > 0).astype(int)
    return x, y


def classifier(seed=1, dtype="float64", metrics=None):
    net = nncore.Network([nncore.Dense(12, "tanh"), nncore.Dense(2)], dtype=dtype, seed=seed)
    net.use(losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam",
            metrics=metrics)
    return net


class Batches:
    """A Keras PyDataset-like sequence: len() batches, batch i by index."""

    def __init__(self, x, y, size, w=None):
        self.x, self.y, self.w, self.size = x, y, w, size
        self.requested = []

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        self.requested.append(i)
        part = slice(i * self.size, (i + 1) * self.size)
        if self.w is None:
            return self.x[part], self.y[part]
        return self.x[part], self.y[part], self.w[part]


def test_one_block_without_shuffle_equals_the_array_fit():
    x, y = data()
    a, b = classifier(), classifier()
    ha = a.fit(x, y, epochs=3, batch_size=50, shuffle=False, verbose=0)
    hb = b.fit([(x, y)], epochs=3, batch_size=50, shuffle=False, verbose=0)
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-12)


def test_sequence_of_batches_trains_one_step_per_item():
    x, y = data()
    seq = Batches(x, y, 40)
    net = classifier(metrics=["accuracy"])
    history = net.fit(seq, epochs=6, verbose=0)
    assert net.training_optimizer.iterations == 6 * 15
    assert sorted(seq.requested[-15:]) == list(range(15))        # every batch once an epoch
    assert seq.requested[-15:] != list(range(15))                # in a shuffled order
    assert history.history["accuracy"][-1] > 0.9
    assert history.history["loss"][-1] < history.history["loss"][0]
    scores = net.evaluate(seq)
    assert scores == pytest.approx(net.evaluate(x, y), rel=1e-9)
    np.testing.assert_array_equal(net.predict(seq), net.predict(x))


def test_same_seed_same_result_and_shuffle_depends_on_it():
    x, y = data()
    runs = [classifier(seed=s) for s in (1, 1, 2)]
    for net in runs:
        net.fit(Batches(x, y, 64), epochs=2, verbose=0)
    for p, q in zip(runs[0].params, runs[1].params):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(runs[0].params[0], runs[2].params[0])


def test_generator_is_read_once_and_reiterable_objects_every_epoch():
    x, y = data()

    def batches():
        for i in range(0, 600, 100):
            yield x[i:i + 100], y[i:i + 100]

    net = classifier()
    history = net.fit(batches(), epochs=1, verbose=0)
    assert net.training_optimizer.iterations == 6 and len(history.history["loss"]) == 1
    with pytest.raises(ValueError, match="an iterator can be read only once"):
        net.fit(batches(), epochs=2, verbose=0)

    class Again:
        def __iter__(self):
            return batches()

    before = net.training_optimizer.iterations
    net.fit(Again(), epochs=3, batch_size=25, verbose=0)
    assert net.training_optimizer.iterations - before == 3 * 6 * 4


def test_weights_in_batches_and_class_weight():
    x, y = data()
    w = np.where(y == 1, 3.0, 1.0)
    a, b = classifier(), classifier()
    a.fit(Batches(x, y, 50, w), epochs=2, verbose=0)
    b.fit(Batches(x, y, 50), epochs=2, verbose=0, class_weight={1: 3.0})
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p, q)
    full = a.evaluate(x, y, sample_weight=w)["loss"]
    assert a.evaluate(Batches(x, y, 50, w))["loss"] == pytest.approx(full, rel=1e-9)


def test_validation_and_callbacks_on_streams():
    x, y = data()
    net = classifier()
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0)
    history = net.fit(Batches(x[:500], y[:500], 50), epochs=20, verbose=0,
                      validation_data=(Batches(x[500:], y[500:], 50), None),
                      callbacks=[stop])
    assert len(history.history["val_loss"]) == 2           # stopped by the callback
    with pytest.raises(ValueError, match="validation_split needs in-memory arrays"):
        net.fit(Batches(x, y, 50), validation_split=0.2, verbose=0)


def test_stream_errors_name_the_problem():
    x, y = data()
    net = classifier()
    with pytest.raises(ValueError, match="y and sample_weight come in the batches"):
        net.fit(Batches(x, y, 50), y, verbose=0)
    with pytest.raises(ValueError, match="batch 0: expected \\(x, y\\)"):
        net.fit(iter([x[:10]]), verbose=0)
    with pytest.raises(ValueError, match="Network.fit: y is missing"):
        net.fit(x, verbose=0)
    with pytest.raises(ValueError, match="Network.evaluate: y is missing"):
        net.evaluate(x)
    with pytest.raises(ValueError, match="holds no batches"):
        net.fit(Batches(x[:0], y[:0], 5), verbose=0)
    net2 = classifier()
    with pytest.raises(ValueError, match=r"expected input shape \(None, 5\), received \(10, 4\)"):
        net2.fit([(x[:10], y[:10]), (x[:10, :4], y[:10])], verbose=0)
    with pytest.raises(FloatingPointError, match="block"):
        bad = nncore.Network([nncore.Dense(1)], seed=0)
        bad.use("mse", optimizer=nncore.optimizers.SGD(1e30))
        bad.fit([(x * 1e20, np.ones((600, 1)))], epochs=3, verbose=0)


def test_article_style_lists_stay_plain_data():
    # a list of per-sample arrays is data, not batches
    x = [np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]])]
    net = nncore.Network([nncore.FCLayer(2, 1)], seed=0)
    net.use(losses.mse, losses.mse_prime)
    net.fit(x, [np.array([[1.0]]), np.array([[0.0]])], epochs=2, learning_rate=0.1, verbose=0)
    assert net.predict(x).shape == (2, 1, 1)


def test_dask_arrays_on_the_local_scheduler():
    da = pytest.importorskip("dask.array")
    x, y = data(1000)
    X = da.from_array(x, chunks=(170, 2))            # split columns too: they are joined
    a, b = classifier(), classifier()
    a.fit(X, y, epochs=3, verbose=0, sample_weight=da.from_array(np.ones(1000), chunks=300))
    b.fit([(x[i:i + 170], y[i:i + 170]) for i in range(0, 1000, 170)], epochs=3,
          batch_size=32, verbose=0)
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(a.predict(X), a.predict(x))
    assert a.evaluate(X, da.from_array(y, chunks=500)) == pytest.approx(a.evaluate(x, y),
                                                                        rel=1e-9)
    with pytest.raises(ValueError, match="x has 1000 samples but y has 999"):
        a.fit(X, y[:-1], verbose=0)
    with pytest.raises(ValueError, match="y must be its targets"):
        a.fit(X, verbose=0)


def test_streams_and_arrays_report_through_one_loop(capsys):
    # batch callbacks see the batch index within the epoch, whatever block
    # it came from, and the epoch line is the one array fits print
    x, y = data(300)
    seen = []

    class Batches_(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, logs["size"]))

    net = classifier(metrics=["accuracy"])
    history = net.fit(Batches(x, y, 100), epochs=2, batch_size=40, verbose=2,
                      callbacks=[Batches_()])
    assert seen == [(i, size) for i, size in enumerate([40, 40, 20] * 3)] * 2
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[:2] for line in lines] == [["Epoch 1/2", "9 steps"],
                                                        ["Epoch 2/2", "9 steps"]]
    assert f"loss: {history['loss'][1]:.4f}" in lines[1]
    assert f"accuracy: {history['accuracy'][1]:.4f}" in lines[1]
    article = nncore.Network([nncore.FCLayer(5, 2)], seed=0).use("mse")
    article.fit([(x[:50], np.eye(2)[y[:50]])], epochs=1, verbose=1)
    assert capsys.readouterr().out.startswith("epoch 1/1   error=")


def test_learning_rate_of_the_call_is_what_callbacks_see_and_set():
    x, y = data(200)
    net = classifier()
    rates = []

    class Record(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            rates.append((self.network.trainer.learning_rate,
                          self.network.optimizer.learning_rate))

    net.fit(x, y, epochs=3, verbose=0, learning_rate=0.1,
            callbacks=[callbacks.LearningRateScheduler(lambda epoch, rate: rate / 2), Record()])
    assert rates == [(0.05, 0.001), (0.025, 0.001), (0.0125, 0.001)]
    assert net.optimizer.learning_rate == 0.001 and net.trainer is None
    # without a rate for the call, the scheduler sets the optimizer's, which keeps it
    rates.clear()
    net.fit(Batches(x, y, 50), epochs=2, verbose=0,
            callbacks=[callbacks.LearningRateScheduler(lambda epoch, rate: rate / 2), Record()])
    assert rates == [(0.0005, 0.0005), (0.00025, 0.00025)]
    assert net.optimizer.learning_rate == 0.00025
