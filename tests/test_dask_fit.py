"""nncore.dask.fit on a real Dask cluster (2 worker processes, 1 thread
each): sync mode equals Network.fit (and a hand loop of gradients /
apply_gradients) to 1e-10 in float64; BatchNormalization is refused in
sync mode and averaged in local mode; local mode equals its definition
(replicas trained on their rows, weights averaged by rows); validation,
callbacks and History as in fit.  The fault tests (a killed worker is
survived; a cluster that loses every worker raises in time) are in
test_dask_fit_faults.py."""
import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import nncore  # noqa: E402
import nncore.dask  # noqa: E402
from nncore.callbacks import Callback, History  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def data(n=240, features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = np.stack([x[:, 0] * 2 - x[:, 1], np.sin(x[:, 2])], axis=1) + 0.1
    return x, y


def mlp(optimizer="sgd", dtype="float64", seed=3):
    net = nncore.Network([nncore.Dense(16, activation="tanh"), nncore.Dense(8, "relu"),
                          nncore.Dense(2)], input_shape=(6,), dtype=dtype, seed=seed)
    return net.use("mse", optimizer=nncore.optimizers.get(optimizer))


def assert_same_weights(a, b, rtol=1e-10):
    for i, (p, q) in enumerate(zip(a.get_weights(), b.get_weights())):
        scale = max(np.abs(p).max(), 1e-300)
        assert np.abs(p - q).max() / scale <= rtol, f"array {i}"


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sync_equals_fit_numpy(client, shuffle, optimizer):
    x, y = data()
    single, spread = mlp(optimizer), mlp(optimizer)
    expected = single.fit(x, y, epochs=3, batch_size=32, shuffle=shuffle, verbose=0)
    history = nncore.dask.fit(spread, x, y, epochs=3, batch_size=32, shuffle=shuffle,
                              verbose=0, client=client)
    assert_same_weights(single, spread)
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=1e-10)
    assert spread.training_optimizer.iterations == single.training_optimizer.iterations
    # the shuffle generator advanced as fit advances it: a second call goes on alike
    single.fit(x, y, epochs=1, batch_size=32, shuffle=shuffle, verbose=0)
    nncore.dask.fit(spread, x, y, epochs=1, batch_size=32, shuffle=shuffle, verbose=0,
                    client=client)
    assert_same_weights(single, spread)


def test_sync_equals_fit_on_uneven_dask_blocks(client):
    x, y = data(n=301)
    X = da.from_array(x, chunks=((90, 7, 120, 84), (6,)))
    Y = da.from_array(y, chunks=((150, 151), (2,)))       # rechunked to X's rows
    single, spread = mlp("adam"), mlp("adam")
    single.fit(x, y, epochs=2, batch_size=50, verbose=0)
    nncore.dask.fit(spread, X, Y, epochs=2, batch_size=50, verbose=0, client=client)
    assert_same_weights(single, spread)


def test_sync_equals_hand_loop_of_gradients_cnn(client):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 8, 8, 1))
    y = rng.integers(0, 3, 64)

    def cnn():
        net = nncore.Network([nncore.Conv2D(4, 3, activation="relu"), nncore.MaxPool2D(2),
                              nncore.Flatten(), nncore.Dense(3)], input_shape=(8, 8, 1),
                             dtype="float64", seed=5)
        return net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                       optimizer=nncore.optimizers.SGD(0.05, momentum=0.9))
    by_hand, spread = cnn(), cnn()
    for _ in range(2):
        for start in range(0, 64, 24):        # the last batch is short (16 rows)
            grads = by_hand.gradients(x[start:start + 24], y[start:start + 24])
            by_hand.optimizer.apply_gradients(grads)
    nncore.dask.fit(spread, x, y, epochs=2, batch_size=24, shuffle=False, verbose=0,
                    client=client)
    assert_same_weights(by_hand, spread)


def test_sync_float32_close_to_fit(client):
    x, y = data()
    single, spread = mlp(dtype="float32"), mlp(dtype="float32")
    single.fit(x, y, epochs=2, batch_size=40, verbose=0)
    nncore.dask.fit(spread, x.astype(np.float32), y, epochs=2, batch_size=40, verbose=0,
                    client=client)
    assert_same_weights(single, spread, rtol=1e-4)


def test_sync_refuses_batchnorm_naming_the_layer(client):
    net = nncore.Network([nncore.Dense(8), nncore.BatchNormalization(), nncore.Dense(2)],
                         input_shape=(6,), dtype="float64", seed=0).use("mse")
    before = net.get_weights()
    x, y = data()
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNormalization\).*mode='local'"):
        nncore.dask.fit(net, x, y, epochs=1, batch_size=32, client=client, verbose=0)
    for a, b in zip(before, net.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_local_mode_averages_replicas_weighted_by_rows(client):
    """One round per epoch: each worker trains a replica on its half of the
    rows (in order) with its share of the global batch, then the client
    averages weights and BatchNormalization's moving statistics."""
    x, y = data(n=200)

    def net_with_bn():
        net = nncore.Network([nncore.Dense(8), nncore.BatchNormalization(),
                              nncore.Dense(2)], input_shape=(6,), dtype="float64", seed=2)
        return net.use("mse", optimizer=nncore.optimizers.SGD(0.05, momentum=0.5))
    spread, reference = net_with_bn(), net_with_bn()
    replicas = [reference.copy(), reference.copy()]      # optimizer state per worker
    halves = [slice(0, 100), slice(100, 200)]
    for _ in range(2):
        averaged = None
        for replica, rows in zip(replicas, halves):
            replica.set_weights(reference.get_weights())
            replica.fit(x[rows], y[rows], epochs=1, batch_size=10, shuffle=False, verbose=0)
            w = replica.get_weights()
            averaged = w if averaged is None else [(a + b) / 2 for a, b in zip(averaged, w)]
        reference.set_weights(averaged)
    history = nncore.dask.fit(spread, x, y, epochs=2, batch_size=20, mode="local",
                              average_every=1000, shuffle=False, verbose=0, client=client)
    assert_same_weights(reference, spread)
    moving_mean = spread.layers[1].get_weights()[2]
    assert np.abs(moving_mean).max() > 0          # the workers' statistics came back
    assert len(history.history["loss"]) == 2


def test_local_mode_trains(client):
    x, y = data(n=400)
    net = mlp(nncore.optimizers.Adam(0.02))
    before = net.evaluate(x, y)["loss"]
    history = nncore.dask.fit(net, x, y, epochs=8, batch_size=32, mode="local",
                              average_every=4, verbose=0, client=client)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert net.evaluate(x, y)["loss"] < 0.2 * before


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append("begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch", epoch))

    def on_batch_end(self, batch, logs=None):
        self.events.append(("batch", batch, logs["size"]))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.events.append("train_end")


def test_validation_callbacks_and_history_as_in_fit(client, capsys, tmp_path):
    x, y = data(n=100)
    vx, vy = data(n=30, seed=1)
    single, spread = mlp(), mlp()
    recorded = [Recorder(), Recorder()]
    expected = single.fit(x, y, epochs=2, batch_size=40, validation_data=(vx, vy), verbose=2,
                          callbacks=[recorded[0]])
    single_output = capsys.readouterr().out
    checkpoint = tmp_path / "last.nncore"
    history = nncore.dask.fit(spread, x, y, epochs=2, batch_size=40, validation_data=(vx, vy),
                              verbose=2, callbacks=[recorded[1]], client=client,
                              checkpoint=checkpoint)
    output = capsys.readouterr().out
    assert type(history) is History and spread.history is history
    assert history.epoch == expected.epoch == [0, 1]
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(history.history[key], expected.history[key], rtol=1e-10)
    assert recorded[1].events == recorded[0].events
    assert recorded[1].events.count(("batch", 2, 20)) == 2
    assert output.count("val_loss") == single_output.count("val_loss") == 2
    np.testing.assert_allclose(nncore.load(checkpoint).predict(vx), spread.predict(vx))


def test_early_stopping_and_learning_rate_callbacks(client):
    x, y = data(n=100)
    def stop():
        return nncore.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    expected = mlp().fit(x, y, epochs=5, batch_size=25, verbose=0, callbacks=[stop()])
    history = nncore.dask.fit(mlp(), x, y, epochs=5, batch_size=25, verbose=0, client=client,
                              callbacks=[stop()])
    assert len(history.history["loss"]) == len(expected.history["loss"]) == 2
    schedule = nncore.callbacks.LearningRateScheduler(lambda epoch, rate: 0.1 / (epoch + 1))
    single = mlp()
    single.fit(x, y, epochs=3, batch_size=25, verbose=0, callbacks=[
        nncore.callbacks.LearningRateScheduler(lambda epoch, rate: 0.1 / (epoch + 1))])
    spread = mlp()
    nncore.dask.fit(spread, x, y, epochs=3, batch_size=25, verbose=0, client=client,
                    callbacks=[schedule])
    assert_same_weights(single, spread)


def test_nonfinite_loss_keeps_the_weights_of_the_step_before(client):
    x, y = data(n=64)
    x[40] = 1e300                      # row 40, in the second batch of 32, overflows the loss
    net = nncore.Network([nncore.Dense(2)], input_shape=(6,), dtype="float64", seed=0)
    net.use("mse")
    seen = []

    class Last(Callback):
        def on_batch_end(self, batch, logs=None):
            if np.isfinite(logs["loss"]):
                seen.append(net.get_weights())
    with pytest.raises(FloatingPointError, match="epoch 1/2, batch 2"):
        nncore.dask.fit(net, x, y, epochs=2, batch_size=32, shuffle=False, verbose=0,
                        client=client, callbacks=[Last()])
    for a, b in zip(seen[-1], net.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments(client):
    x, y = data(n=20)
    with pytest.raises(ValueError, match="mode must be 'sync' or 'local'"):
        nncore.dask.fit(mlp(), x, y, mode="async", client=client)
    with pytest.raises(ValueError, match="average_every"):
        nncore.dask.fit(mlp(), x, y, mode="local", average_every=0, client=client)
    with pytest.raises(RuntimeError, match="set a loss"):
        nncore.dask.fit(nncore.Network([nncore.Dense(1)], input_shape=(6,)), x, y,
                        client=client)
    with pytest.raises(ValueError, match="X has 20 samples and y 19"):
        nncore.dask.fit(mlp(), x, y[:19], client=client, verbose=0)
    with pytest.raises(ValueError, match=r"layer 0 \(Dense\)"):
        nncore.dask.fit(mlp(), x[:, :5], y, client=client, verbose=0)
    with pytest.raises(TypeError, match="must be a nncore.Network"):
        nncore.dask.fit("net", x, y, client=client)


@pytest.mark.parametrize("shuffle", [False, True])
def test_sync_with_dropout_and_augmentation_equals_fit(client, shuffle):
    """Each row draws its dropout mask and its augmentation for its
    position in the global batch from the client's generators, as one
    process draws them, whichever worker holds it; the generators advance
    as fit advances them."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(150, 6, 6, 1))
    y = rng.integers(0, 3, 150)
    X = da.from_array(x, chunks=((40, 35, 75), (6,), (6,), (1,)))

    def net():
        model = nncore.Network([nncore.RandomFlip("horizontal"), nncore.Flatten(),
                                nncore.Dense(16, activation="tanh"), nncore.Dropout(0.4),
                                nncore.Dense(3)], input_shape=(6, 6, 1), dtype="float64",
                               seed=7)
        return model.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                         optimizer=nncore.optimizers.SGD(0.1, momentum=0.9))
    single, spread = net(), net()
    expected = single.fit(x, y, epochs=3, batch_size=64, shuffle=shuffle, verbose=0)
    history = nncore.dask.fit(spread, X, y, epochs=3, batch_size=64, shuffle=shuffle,
                              verbose=0, client=client)
    assert_same_weights(single, spread)
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=1e-10)
    for a, b in zip(single.layers, spread.layers):
        for p, q in zip(a.state, b.state):
            if p.dtype.kind == "u":
                np.testing.assert_array_equal(p, q)


def test_replicas_draw_dropout_masks_of_their_own():
    """Local mode with Dropout: each worker's replica reseeds its generator
    by its position, so two workers do not drop the same units of their
    rows (and the client's generator is not touched)."""
    from nncore import _dask_replica
    net = nncore.Network([nncore.Dense(32), nncore.Dropout(0.5), nncore.Dense(2)],
                         input_shape=(6,), dtype="float64", seed=0).use("mse")
    data_bytes = net._dumps("test")
    original = net.layers[1].state[0].copy()
    try:
        masks = []
        for group in (0, 1):
            with nncore.threads(1):     # replicas run on one thread, as on a worker
                replica = _dask_replica.replica("test-fit", group, data_bytes)
                grads = replica.gradients(np.ones((4, 6)), np.zeros((4, 2)))
            masks.append(grads[2] != 0)           # the units the mask kept, per input
        assert not np.array_equal(masks[0], masks[1])
        assert _dask_replica.replica("test-fit", 0, data_bytes) is not \
            _dask_replica.replica("test-fit", 1, data_bytes)
    finally:
        _dask_replica.forget("test-fit")
    assert not any(k[0] == "test-fit" for k in _dask_replica._replicas)
    np.testing.assert_array_equal(net.layers[1].state[0], original)


def test_sync_with_dropout_trains(client):
    x, y = data(n=400)
    net = nncore.Network([nncore.Dense(32, activation="tanh"), nncore.Dropout(0.2),
                          nncore.Dense(2)], input_shape=(6,), dtype="float64", seed=1)
    net.use("mse", optimizer=nncore.optimizers.Adam(0.01))
    before = net.evaluate(x, y)["loss"]
    nncore.dask.fit(net, x, y, epochs=8, batch_size=32, verbose=0, client=client)
    assert net.evaluate(x, y)["loss"] < 0.3 * before


def test_learning_rate_and_initial_epoch_as_in_fit(client):
    x, y = data(n=120)
    single, spread = mlp("adam"), mlp("adam")
    expected = single.fit(x, y, epochs=3, batch_size=40, initial_epoch=1, learning_rate=0.05,
                          verbose=0)
    history = nncore.dask.fit(spread, x, y, epochs=3, batch_size=40, initial_epoch=1,
                              learning_rate=0.05, verbose=0, client=client)
    assert history.epoch == expected.epoch == [1, 2]
    assert_same_weights(single, spread)
    assert spread.optimizer.learning_rate == single.optimizer.learning_rate != 0.05
