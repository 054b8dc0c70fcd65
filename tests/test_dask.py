"""nncore on a real Dask cluster (2 worker processes, 1 thread each):
distributed prediction, grid search under joblib's dask backend, dask-ml's
Incremental, and fitting on dask arrays; plus out-of-core training on .npy
memmaps larger than a memory cap."""
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
pytest.importorskip("sklearn")

import joblib  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV  # noqa: E402

import nncore  # noqa: E402
import nncore.dask  # noqa: E402
from nncore.sklearn import NNClassifier  # noqa: E402


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


def mlp(hidden=64, dtype="float32"):
    return nncore.Network([nncore.Dense(hidden, "relu"), nncore.Dense(10)], input_shape=(784,),
                          dtype=dtype, seed=0).build()


def lazy_rows(n, chunks, seed=0):
    # a dask array computed on the workers: the graph holds no data
    return da.random.RandomState(seed).random_sample((n, 784), chunks=chunks).astype(np.float32)


def test_predict_network_equals_local_predict(client):
    net = mlp(hidden=4096)                 # 13 MB of weights: too big to ship in a graph
    X = lazy_rows(3000, chunks=((700, 1100, 1, 1199), (400, 384)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # no "Sending large graph" warning
        out = nncore.dask.predict(net, X)
        assert isinstance(out, da.Array) and out.chunks == ((700, 1100, 1, 1199), (10,))
        result = out.compute()
    np.testing.assert_allclose(result, net.predict(X.compute()), rtol=1e-6, atol=1e-6)
    assert client.run(nncore.get_num_threads) == {w: 1 for w in client.run(os.getpid)}


def test_predict_estimator_and_model_file(client, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((300, 784), dtype=np.float32)
    y = (x[:, :10].sum(1) > 5).astype(int) + (x[:, 10:20].sum(1) > 5)
    clf = NNClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    X = lazy_rows(500, chunks=128)
    local = X.compute()
    for method in ("predict", "predict_proba"):
        out = nncore.dask.predict(clf, X, method=method).compute()
        expected = getattr(clf, method)(local)
        assert out.dtype == expected.dtype
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    path = tmp_path / "mlp.nncore"
    net = mlp()
    net.save(path)
    np.testing.assert_allclose(nncore.dask.predict(str(path), X).compute(), net.predict(local),
                               rtol=1e-6, atol=1e-6)


def test_predict_refuses_bad_input(client):
    with pytest.raises(TypeError, match="X must be a dask array, got ndarray"):
        nncore.dask.predict(mlp(), np.zeros((2, 784)))
    with pytest.raises(TypeError, match="model must be a nncore.Network"):
        nncore.dask.predict(object(), lazy_rows(4, 2))
    with pytest.raises(ValueError, match="not built yet"):
        nncore.dask.predict(nncore.Network([nncore.Dense(2)]), lazy_rows(4, 2))


@pytest.mark.parametrize("kind", ["grid", "randomized"])
def test_search_under_the_dask_backend_ranks_like_one_job(client, kind):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(240, 8))
    y = (x[:, 0] + x[:, 1] ** 2 > 1).astype(int) + (x[:, 2] > 0.5)
    grid = {"hidden_layer_sizes": [(4,), (32,)], "learning_rate": [1e-4, 1e-2]}

    def search(n_jobs):
        model = NNClassifier(max_iter=30, random_state=0)
        gs = (GridSearchCV(model, grid, cv=3, n_jobs=n_jobs) if kind == "grid" else
              RandomizedSearchCV(model, grid, n_iter=3, cv=3, n_jobs=n_jobs, random_state=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return gs.fit(x, y)

    serial = search(1)
    with joblib.parallel_backend("dask"):
        spread = search(-1)
    np.testing.assert_array_equal(spread.cv_results_["rank_test_score"],
                                  serial.cv_results_["rank_test_score"])
    np.testing.assert_allclose(spread.cv_results_["mean_test_score"],
                               serial.cv_results_["mean_test_score"])
    assert len(set(serial.cv_results_["mean_test_score"])) > 1   # the ranking means something


def test_dask_ml_incremental_trains_through_partial_fit(client):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X = da.random.RandomState(0).random_sample((4000, 20), chunks=(500, -1)) - 0.5
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = wrappers.Incremental(NNClassifier(hidden_layer_sizes=(16,), learning_rate=1e-2,
                                              random_state=0), scoring="accuracy")
    model.fit(X, y, classes=[0, 1])
    assert model.estimator_.n_iter_ == 8          # one partial_fit per block
    assert model.score(X, y) > 0.9


def test_fit_on_dask_arrays_equals_fit_on_the_same_blocks(client):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    X, Y = da.from_array(x, chunks=(300, 6)), da.from_array(y, chunks=300)
    nets = []
    for data in ((X, Y), ([(x[i:i + 300], y[i:i + 300]) for i in range(0, 1000, 300)],)):
        net = nncore.Network([nncore.Dense(16, "tanh"), nncore.Dense(1)], seed=5)
        net.use(nncore.losses.BinaryCrossentropy(from_logits=True), optimizer="adam",
                metrics=["accuracy"])
        history = net.fit(*data, epochs=8, batch_size=32, verbose=0)
        nets.append((net, history))
    (a, ha), (b, hb) = nets
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p, q)
    assert ha.history == hb.history
    assert ha.history["accuracy"][-1] > 0.85
    assert a.evaluate(X, Y) == pytest.approx(a.evaluate(x, y), rel=1e-6)
    np.testing.assert_array_equal(a.predict(X), a.predict(x))


OUT_OF_CORE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import dask, dask.array as da
    import nncore

    folder, cap = sys.argv[1], int(sys.argv[2])
    files = sorted(__import__("glob").glob(folder + "/x*.npy"))
    xs = [np.load(f, mmap_mode="r") for f in files]
    ys = [np.load(f.replace("/x", "/y"), mmap_mode="r") for f in files]
    X = da.concatenate([da.from_array(x, chunks=(4096, -1)) for x in xs])
    Y = da.concatenate([da.from_array(y, chunks=4096) for y in ys])
    net = nncore.Network([nncore.Dense(32, "relu"), nncore.Dense(1)], seed=0)
    net.use("mse", optimizer="adam")
    # warm up (threads, allocator arenas, plans) before the cap
    net.fit(np.zeros((64, X.shape[1]), np.float32), np.zeros(64), epochs=1, verbose=0)

    def data_bytes():
        for line in open("/proc/self/status"):
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024

    limit = data_bytes() + cap
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    try:
        np.ones(X.size // 2, np.float32)       # half the data set: must not fit under the cap
        sys.exit("the memory cap does not hold")
    except MemoryError:
        pass
    with dask.config.set(scheduler="synchronous"):
        history = net.fit(X, Y, epochs=2, batch_size=256, verbose=0)
        scores = net.evaluate(X, Y)
        first = net.predict(X[:10])
    print(history.history["loss"][0], history.history["loss"][-1], scores["loss"])
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the memory cap is Linux's RLIMIT_DATA, read from /proc")
def test_out_of_core_fit_on_memmaps_beyond_a_memory_cap(tmp_path):
    # 4 files x 26,000 rows x 512 float32 = 213 MB on disk; the fit may
    # allocate at most 64 MB of private memory beyond what it held before
    rng = np.random.default_rng(4)
    w = rng.normal(size=512).astype(np.float32) / 20
    for i in range(4):
        x = np.lib.format.open_memmap(tmp_path / f"x{i}.npy", "w+", np.float32, (26000, 512))
        for start in range(0, 26000, 6500):
            x[start:start + 6500] = rng.random((6500, 512), dtype=np.float32)
        np.save(tmp_path / f"y{i}.npy", np.asarray(x @ w, np.float32))
        del x
    cap = 64 << 20
    size = sum(f.stat().st_size for f in tmp_path.glob("x*.npy"))
    assert size > 3 * cap
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MALLOC_ARENA_MAX="1")
    root = Path(nncore.__file__).parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in
                                         env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # cwd: `python -c` looks in the working directory first, which must not be
    # a checkout whose nncore/ has no compiled modules
    run = subprocess.run([sys.executable, "-c", OUT_OF_CORE, str(tmp_path), str(cap)],
                         capture_output=True, text=True, env=env, timeout=300, cwd=root)
    assert run.returncode == 0, run.stdout + run.stderr
    first, last, evaluated = map(float, run.stdout.split())
    assert last < first / 2 and evaluated < first / 2
