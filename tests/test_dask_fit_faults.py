"""nncore.dask.fit when workers die: each test starts its own
LocalCluster(n_workers=2, threads_per_worker=1, processes=True) and kills
worker processes (os.kill with SIGKILL) in the middle of a fit.

- One worker killed: the fit finishes on the workers left (and the one the
  nanny restarts), with the same weights as Network.fit (sync mode is
  deterministic whichever worker computes which rows); for NumPy input the
  lost rows are scattered again, for a dask array Dask recomputes them.
- Every worker killed for good (the nannies do not restart them): the fit
  raises WorkersLost within its timeout; the network holds the weights of
  the last completed step and the checkpoint file loads.

Nothing here depends on timing beyond generous bounds: kills happen from a
callback between two steps (the next step then meets a dead worker), and
the only clock is the bound on how long the failing fit may take."""
import os
import signal
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import nncore  # noqa: E402
import nncore.dask  # noqa: E402
from nncore.dask import WorkersLost  # noqa: E402
from nncore.callbacks import Callback  # noqa: E402


@pytest.fixture
def cluster_client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        yield cluster, client
    finally:
        client.close()
        try:
            cluster.close()
        except KeyError:
            # distributed's LocalCluster may have tripped over a worker the test
            # killed (its worker-status watcher looks the removed worker up in
            # a cache that no longer lists it); the watcher's error surfaces
            # here, after the workers and the scheduler are closed
            pass


def data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    return x, np.stack([x[:, 0] * 2 - x[:, 1], np.sin(x[:, 2])], axis=1)


def mlp():
    net = nncore.Network([nncore.Dense(16, activation="tanh"), nncore.Dense(2)],
                         input_shape=(6,), dtype="float64", seed=3)
    return net.use("mse", optimizer=nncore.optimizers.Adam(0.01))


class KillAt(Callback):
    """After batch `batch` of epoch `epoch`: SIGKILL the worker processes
    `which` (indices in address order); with `cluster` given, its nannies
    are told not to restart them first (machines gone for good)."""

    def __init__(self, client, epoch, batch, which=(0,), cluster=None):
        super().__init__()
        self.client, self.at, self.which, self.cluster = client, (epoch, batch), which, cluster
        self.epoch = None
        self.weights = None           # the weights after the last completed step
        self.killed = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_weights = self.network.get_weights()

    def on_batch_end(self, batch, logs=None):
        self.weights = self.network.get_weights()
        if (self.epoch, batch) != self.at:
            return
        pids = self.client.run(os.getpid)
        workers = sorted(pids)
        if self.cluster is not None:
            for nanny in self.cluster.workers.values():
                nanny.close_gracefully("the test takes the machine away")
        for index in self.which:
            os.kill(pids[workers[index]], signal.SIGKILL)
        self.killed = time.monotonic()


def assert_same_weights(a, b, rtol=1e-10):
    for p, q in zip(a.get_weights(), b.get_weights()):
        assert np.abs(p - q).max() <= rtol * np.abs(p).max()


@pytest.mark.parametrize("source", ["numpy", "dask"])
def test_a_killed_worker_is_survived(cluster_client, source, tmp_path):
    _, client = cluster_client
    x, y = data()
    X, Y = (x, y) if source == "numpy" else \
        (da.from_array(x, chunks=(100, 6)), da.from_array(y, chunks=(100, 2)))
    single, spread = mlp(), mlp()
    single.fit(x, y, epochs=3, batch_size=50, verbose=0)
    kill = KillAt(client, epoch=1, batch=2)
    checkpoint = tmp_path / "fit.nncore"
    history = nncore.dask.fit(spread, X, Y, epochs=3, batch_size=50, verbose=0,
                              client=client, callbacks=[kill], checkpoint=checkpoint)
    assert kill.killed is not None
    assert len(history.history["loss"]) == 3
    assert_same_weights(single, spread)
    assert_same_weights(spread, nncore.load(checkpoint), rtol=0)


def test_losing_every_worker_raises_in_time_and_keeps_the_last_step(cluster_client,
                                                                     tmp_path):
    cluster, client = cluster_client
    x, y = data()
    net = mlp()
    kill = KillAt(client, epoch=1, batch=3, which=(0, 1), cluster=cluster)
    checkpoint = tmp_path / "fit.nncore"
    with pytest.raises(WorkersLost, match="within 10 s.*weights of the last completed step"):
        nncore.dask.fit(net, x, y, epochs=3, batch_size=50, verbose=0, client=client,
                        callbacks=[kill], checkpoint=checkpoint, timeout=10)
    assert time.monotonic() - kill.killed < 60
    for a, b in zip(kill.weights, net.get_weights()):
        np.testing.assert_array_equal(a, b)
    saved = nncore.load(checkpoint)             # saved at the end of epoch 0
    for a, b in zip(kill.epoch_weights, saved.get_weights()):
        np.testing.assert_array_equal(a, b)
