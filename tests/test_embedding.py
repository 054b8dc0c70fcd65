"""Embedding: steady-state steps allocate nothing, threads predict safely."""
import threading
import tracemalloc

import numpy as np
import pytest

import nncore
from subprocess_helpers import run_outside_checkout


def mlp(dtype="float32"):
    return nncore.Network([nncore.Dense(64, activation="relu"), nncore.Dense(32, activation="tanh"),
                           nncore.Dense(10)], input_shape=(100,), dtype=dtype, seed=0).build()


def traced_peak(run):
    """Peak bytes traced while run() executes, above what was allocated before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def test_steady_state_predict_allocates_only_its_output():
    net = mlp()
    x = np.random.default_rng(0).normal(size=(1, 100)).astype(np.float32)
    net.predict(x)  # warm-up: the thread's plan and buffers

    def many():
        for _ in range(2000):
            net.predict(x)
    # 2000 calls may hold at most a few output arrays at a time
    assert traced_peak(many) < 4096


def test_steady_state_training_allocates_no_per_step_memory():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 100)).astype(np.float32)
    y = rng.normal(size=(512, 10)).astype(np.float32)
    net = mlp().use("mse")
    net.fit(x, y, epochs=1, batch_size=32, verbose=0)  # warm-up
    one_batch_of_activations = 32 * (100 + 64 + 32 + 10) * 4
    short = traced_peak(lambda: net.fit(x, y, epochs=1, batch_size=32, verbose=0))
    long = traced_peak(lambda: net.fit(x, y, epochs=8, batch_size=32, verbose=0))
    # per-fit bookkeeping (the sample order, per-step losses, the two copies of
    # the weights that a divergence goes back to) but no activations
    weights = sum(w.nbytes for w in net.get_weights())
    assert short < 4 * 512 * 8 + 16384 + 2 * weights
    assert long < short + 8192
    assert long < 8 * one_batch_of_activations


@pytest.fixture
def one_blas_thread():
    with nncore.threads(1):
        yield


def test_threads_predicting_at_once_match_serial(one_blas_thread):
    # one BLAS thread per predicting thread: bit-identical to a serial run
    # (threaded BLAS splits rows differently and may change the last bit)
    net = mlp("float64")
    rng = np.random.default_rng(1)
    inputs = [rng.normal(size=(int(n), 100)) for n in rng.integers(1, 300, 16)]
    expected = [net.predict(x) for x in inputs]
    results = [None] * len(inputs)
    barrier = threading.Barrier(4)

    def worker(k):
        barrier.wait()
        for _ in range(20):
            for i in range(k, len(inputs), 4):
                results[i] = net.predict(inputs[i])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_num_threads_api():
    previous = nncore.get_num_threads()
    with nncore.threads(1):
        assert nncore.get_num_threads() == 1
    assert nncore.get_num_threads() == previous
    with pytest.raises(ValueError):
        nncore.set_num_threads(0)


def test_import_does_not_load_all_of_scipy_linalg(tmp_path):
    code = "import sys, nncore; print('scipy.linalg' in sys.modules)"
    assert run_outside_checkout(code, tmp_path) == "False"


def test_predict_from_another_thread_during_fit_is_refused():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 100)).astype(np.float32)
    y = rng.normal(size=(2000, 10)).astype(np.float32)
    net = mlp().use("mse")
    errors = []
    started, attempted = threading.Event(), threading.Event()

    class Signal(nncore.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            # hold the first epoch until the other thread has tried
            if not started.is_set():
                started.set()
                attempted.wait(timeout=30)

    def other():
        started.wait()
        for attempt in (lambda: net.predict(x[:1]),
                        lambda: net.fit(x, y, epochs=1, verbose=0)):
            try:
                attempt()
            except RuntimeError as error:
                errors.append(str(error))
        attempted.set()

    thread = threading.Thread(target=other)
    thread.start()
    net.fit(x, y, epochs=2, verbose=0, callbacks=[Signal()])
    thread.join()
    assert len(errors) == 2
    assert "fit is running on this network in another thread" in errors[0]
    assert "already being trained" in errors[1]
    net.predict(x[:1])  # fine again once fit has returned


def test_inference_session_matches_predict_and_writes_into_out(tmp_path):
    net = mlp()
    x = np.random.default_rng(2).normal(size=(7, 100)).astype(np.float32)
    session = nncore.InferenceSession(net)
    np.testing.assert_array_equal(session.predict(x), net.predict(x))
    out = np.empty((7, 10), np.float32)
    assert session.predict(x, out) is out
    np.testing.assert_array_equal(out, net.predict(x))
    # lists, other dtypes and Fortran order go through the full validation
    np.testing.assert_allclose(session.predict(np.asfortranarray(x.astype(np.float64))),
                               net.predict(x), rtol=1e-6)
    net.save(tmp_path / "m.nncore")
    np.testing.assert_array_equal(nncore.InferenceSession(tmp_path / "m.nncore").predict(x),
                                  net.predict(x))


def test_inference_session_steady_state_allocates_nothing():
    session = nncore.InferenceSession(mlp())
    x = np.random.default_rng(0).normal(size=(1, 100)).astype(np.float32)
    out = np.empty((1, 10), np.float32)
    session.predict(x, out)

    def many():
        for _ in range(2000):
            session.predict(x, out)
    assert traced_peak(many) < 1024


@pytest.mark.parametrize("x,out,error,match", [
    (np.zeros((2, 99), np.float32), None, ValueError, r"expected input shape \(None, 100\)"),
    (np.full((2, 100), np.nan, np.float32), None, ValueError, "NaN or inf"),
    (np.zeros((2, 100), np.float32), np.zeros((2, 10)), ValueError, "out must be"),
    (np.zeros((2, 100), np.float32), np.zeros((3, 10), np.float32), ValueError, "out must be"),
    (np.zeros((0, 100), np.float32), None, ValueError, "empty"),
    (np.zeros((2, 100), np.float32), np.zeros((10, 2), np.float32).T, ValueError, "out must be"),
    (np.zeros((2, 100), np.float32), np.zeros((20,), np.float32), ValueError, "out must be"),
    (np.zeros((2, 100), np.float32), np.zeros((2, 10), np.float32).view(np.recarray),
     ValueError, "out must be"),
    (np.zeros((2, 100), np.float32), np.zeros((2, 10), ">f4"), ValueError, "out must be"),
    (np.zeros((700, 100), np.float32), np.zeros((700, 10), np.float32)[::1, ::-1], ValueError,
     "out must be"),
])
def test_inference_session_rejects_bad_input(x, out, error, match):
    with pytest.raises(error, match=match):
        nncore.InferenceSession(mlp()).predict(x, out)


def test_inference_session_refuses_a_read_only_out():
    out = np.zeros((2, 10), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be"):
        nncore.InferenceSession(mlp()).predict(np.zeros((2, 100), np.float32), out)
    assert not out.any()


def test_inference_session_finds_a_nan_anywhere_in_a_large_batch():
    session = nncore.InferenceSession(mlp())
    x = np.zeros((1000, 100), np.float32)
    for index in (0, 50_000, x.size - 1):
        x.flat[index] = np.inf
        with pytest.raises(ValueError, match="NaN or inf"):
            session.predict(x)
        x.flat[index] = 0


def test_inference_session_converts_arrays_off_the_fast_path():
    session = nncore.InferenceSession(mlp())
    x = np.random.default_rng(0).normal(size=(8, 100)).astype(np.float32)
    expected = session.predict(x)
    wide = np.zeros((8, 200), np.float32)
    wide[:, ::2] = x
    for variant in (wide[:, ::2], np.asfortranarray(x), x.astype(">f4"), x.astype(np.float64),
                    x.tolist()):
        np.testing.assert_array_equal(session.predict(variant), expected)


def test_inference_session_needs_a_built_native_network():
    with pytest.raises(RuntimeError, match="not built"):
        nncore.InferenceSession(nncore.Network([nncore.Dense(3)]))

    class Twice(nncore.Layer):
        def forward(self, x, training=False):
            return 2 * x
    net = nncore.Network([nncore.Dense(3), Twice()], input_shape=(4,)).build()
    with pytest.raises(TypeError, match="Python layers"):
        nncore.InferenceSession(net)
