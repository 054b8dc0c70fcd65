"""Reliability under fork, interrupts and concurrency: each test tries to break
a guarantee of the README's Reliability section.  Runs that could hang run in
a subprocess or in daemon threads with timeouts, so a hang fails the test."""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import nncore

POSIX = hasattr(os, "fork")
# the directory holding the nncore under test, for subprocesses
IMPORT_PATH = str(Path(nncore.__file__).resolve().parents[1])


def run_script(code: str, *args, timeout: float) -> dict:
    """Run `code` in a fresh Python; the JSON object it prints last."""
    env = dict(os.environ, PYTHONPATH=IMPORT_PATH)
    try:
        # cwd: `python -c` looks in the working directory first, which must not
        # be a checkout whose nncore/ has no compiled modules
        done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=timeout,
                              cwd=IMPORT_PATH)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the script hung (no result after {timeout} s); "
                    f"stderr: {error.stderr!r}")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(result)           # the counts, shown with pytest -s
    return result


# ------------------------------------------------------------------ fork
FORK_SCRIPT = r"""
import json, multiprocessing, os, signal, sys, threading, time, traceback
import numpy as np
import nncore

forks, child_timeout = int(sys.argv[1]), float(sys.argv[2])
nncore.set_num_threads(2)
rng = np.random.default_rng(0)
net = nncore.Network([nncore.Dense(256, "relu"), nncore.Dense(10)], input_shape=(784,),
                     seed=0).build()
x = rng.random((4096, 784), dtype=np.float32)      # big enough for threaded BLAS
reference = net.predict(x)
trained = nncore.Network([nncore.Dense(64, "relu"), nncore.Dense(10)], seed=1).use("mse")
xt = rng.random((1024, 784), dtype=np.float32)
yt = rng.random((1024, 10), dtype=np.float32)
session = nncore.InferenceSession(net)
stop = threading.Event()

def predicting():
    while not stop.is_set():
        net.predict(x)

def session_predicting():
    out = np.empty_like(reference)
    while not stop.is_set():
        session.predict(x, out)

def fitting():
    while not stop.is_set():
        trained.fit(xt, yt, epochs=2, batch_size=1024, verbose=0)

def in_child():
    # runs in the child: predict a large batch, then train the network that
    # another parent thread was training at the fork
    try:
        if not np.array_equal(net.predict(x), reference):
            return 3
        trained.fit(xt, yt, epochs=1, batch_size=256, verbose=0)
        return 0 if np.isfinite(trained.predict(xt)).all() else 4
    except BaseException:
        traceback.print_exc()
        return 5

def wait(pid):
    deadline = time.monotonic() + child_timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.005)

def mp_child(queue):
    queue.put(in_child())

threads = [threading.Thread(target=f, daemon=True)
           for f in (predicting, session_predicting, fitting)]
for t in threads:
    t.start()
codes = []
for i in range(forks):
    time.sleep(0.005 + 0.02 * rng.random())
    pid = os.fork()
    if pid == 0:
        os._exit(in_child())
    codes.append(wait(pid))
context = multiprocessing.get_context("fork")
for i in range(3):
    queue = context.Queue()
    process = context.Process(target=mp_child, args=(queue,))
    process.start()
    process.join(child_timeout)
    if process.is_alive():
        process.kill()
        codes.append(None)
    else:
        codes.append(queue.get(timeout=5))
    forks += 1
stop.set()
for t in threads:
    t.join(30)
print(json.dumps({"forks": forks, "hung": codes.count(None),
                  "mismatched": codes.count(3),
                  "failed": sum(c not in (None, 0, 3) for c in codes)}))
"""


@pytest.mark.skipif(not POSIX, reason="no fork on this platform")
def test_forked_children_predict_and_fit_whatever_the_parent_threads_do():
    # other threads run threaded predicts, session predicts and fits while the
    # main thread forks; each child predicts a large batch and trains
    result = run_script(FORK_SCRIPT, 50, 30, timeout=400)
    assert result["forks"] == 53
    assert result["hung"] == 0
    assert result["mismatched"] == 0
    assert result["failed"] == 0


@pytest.mark.skipif(not POSIX, reason="no fork on this platform")
def test_a_fork_waits_for_running_native_sections():
    from nncore._native import plan
    assert plan.fork_prepare(1.0)      # nothing running: closes at once
    plan.fork_parent()
    net = nncore.Network([nncore.Dense(8)], input_shape=(4,)).build()
    net.predict(np.ones((3, 4)))       # the gate is open again


# ------------------------------------------------------------- interrupts
INTERRUPT_SCRIPT = r"""
import json, os, signal, tempfile, threading, time
import numpy as np
import nncore

# a process started in the background by a non-interactive shell (CI jobs
# often are) inherits SIGINT ignored, and Python then keeps it ignored
signal.signal(signal.SIGINT, signal.default_int_handler)

rng = np.random.default_rng(0)
net = nncore.Network([nncore.Dense(512, "relu"), nncore.Dense(512, "relu"),
                      nncore.Dense(10)], seed=0).use("mse")
x = rng.random((200_000, 32), dtype=np.float32)
y = rng.random((200_000, 10), dtype=np.float32)
net.fit(x[:256], y[:256], epochs=1, verbose=0)
session = nncore.InferenceSession(net)
out = np.empty((len(x), 10), np.float32)
calls = {"predict": lambda: net.predict(x),
         "InferenceSession.predict": lambda: session.predict(x, out),
         "evaluate": lambda: net.evaluate(x, y),
         "fit": lambda: net.fit(x, y, epochs=100, batch_size=128, verbose=0)}
delays = {}
for name, call in calls.items():
    sent = []
    def interrupt():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)
    threading.Timer(0.3, interrupt).start()
    try:
        while True:        # until interrupted
            call()
    except KeyboardInterrupt:
        delays[name] = time.perf_counter() - sent[0]
# still usable: finite weights, predict, save and load, fit again
finite = all(np.isfinite(w).all() for w in net.get_weights())
small = x[:1000]
same = bool(np.array_equal(net.predict(small), session.predict(small)))
path = os.path.join(tempfile.mkdtemp(), "net.nncore")
net.save(path)
loaded = bool(np.array_equal(nncore.load(path).predict(small), net.predict(small)))
net.fit(x[:512], y[:512], epochs=1, verbose=0)
print(json.dumps({"delays": delays, "finite": bool(finite), "same": same,
                  "loaded": loaded}))
"""


@pytest.mark.skipif(not POSIX, reason="SIGINT through os.kill")
def test_ctrl_c_is_honoured_promptly_and_the_network_stays_usable():
    result = run_script(INTERRUPT_SCRIPT, timeout=300)
    delays = result["delays"]
    assert set(delays) == {"predict", "InferenceSession.predict", "evaluate", "fit"}
    slow = {name: delay for name, delay in delays.items() if delay > 0.3}
    assert not slow, f"interrupts honoured late (seconds): {slow}"
    assert result["finite"] and result["same"] and result["loaded"]


# ------------------------------------------------------------ concurrency
def mlp(seed=0, inputs=16):
    return nncore.Network([nncore.Dense(32, "tanh"), nncore.Dense(4)], input_shape=(inputs,),
                          seed=seed).use("mse", optimizer="sgd")


def run_threads(functions, timeout):
    """Run the functions in daemon threads; fail on a hang or an exception."""
    errors = []

    def wrapped(function):
        try:
            function()
        except BaseException as error:      # reported below
            errors.append(error)

    threads = [threading.Thread(target=wrapped, args=(f,), daemon=True) for f in functions]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"threads still running after {timeout} s"
    if errors:
        raise errors[0]


@pytest.fixture
def one_thread():
    # one BLAS thread: outputs are bit-identical to a serial run
    previous = nncore.get_num_threads()
    nncore.set_num_threads(1)
    yield
    nncore.set_num_threads(previous)


def test_two_fits_on_one_network_never_run_at_once(one_thread):
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 16)), rng.random((64, 4))
    net = mlp()
    spans, refused = [], []

    class Span(nncore.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.began = time.perf_counter()

        def on_train_end(self, logs=None):
            spans.append((self.began, time.perf_counter()))

    for trial in range(200):
        barrier = threading.Barrier(2)

        def fit():
            barrier.wait()
            try:
                net.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[Span()])
            except RuntimeError as error:
                assert "already being trained" in str(error)
                refused.append(trial)

        spans.clear()
        run_threads([fit, fit], timeout=60)
        spans.sort()
        overlapping = len(spans) == 2 and spans[1][0] < spans[0][1]
        assert not overlapping, f"trial {trial}: two fits ran at once"
    print({"trials": 200, "refused": len(refused)})


def test_fit_is_refused_while_a_long_predict_runs_and_rows_never_tear(one_thread):
    rng = np.random.default_rng(1)
    net = nncore.Network([nncore.Dense(256, "tanh"), nncore.Dense(4)], input_shape=(64,),
                         seed=0).use("mse")
    x = rng.random((100_000, 64), dtype=np.float32)
    xt, yt = rng.random((256, 64)), rng.random((256, 4))
    before = net.predict(x)
    results, refused = [], []
    started = threading.Event()

    def predict():
        started.set()
        for _ in range(3):
            try:
                results.append(net.predict(x))
            except RuntimeError as error:      # the fit got in between two predicts
                assert "fit is running" in str(error)

    def fit():
        started.wait()
        time.sleep(0.02)            # let the first predict get going
        for _ in range(2000):
            try:
                net.fit(xt, yt, epochs=1, verbose=0)
                return
            except RuntimeError as error:
                assert "predict" in str(error)
                refused.append(1)
                time.sleep(0.001)

    run_threads([predict, fit], timeout=120)
    after = net.predict(x)
    assert results, "every predict was refused"
    for out in results:
        rows_before = (out == before).all(axis=1)
        rows_after = (out == after).all(axis=1)
        assert rows_before.all() or rows_after.all(), "a predict returned torn rows"
    assert refused, "fit was never refused while predict ran"


def test_mixed_calls_from_many_threads_equal_serial_runs_or_are_refused(tmp_path, one_thread):
    """Threads mix predict, InferenceSession.predict, copy, save/load,
    get_weights and fit on one shared network, and fit + predict on their own
    networks.  Every call on the shared network either is refused with
    RuntimeError or returns outputs equal to the network's outputs at one of
    its trained versions (no torn rows); the own networks equal serial runs."""
    rng = np.random.default_rng(2)
    x = rng.random((2000, 16), dtype=np.float32)
    xt, yt = rng.random((128, 16)), rng.random((128, 4))
    shared = mlp(seed=3)
    session = nncore.InferenceSession(shared.build())
    versions = [shared.predict(x)]             # outputs after each successful fit
    seen, counts = [], {"calls": 0, "refused": 0}
    count_lock = threading.Lock()
    duration = 3.0

    def record(calls=1, refused=0):
        with count_lock:
            counts["calls"] += calls
            counts["refused"] += refused

    def reader(kind):
        def run():
            end = time.monotonic() + duration
            out = np.empty((len(x), 4), np.float32)
            k = 0
            while time.monotonic() < end:
                k += 1
                try:
                    if kind == "predict":
                        seen.append(shared.predict(x))
                    elif kind == "session":
                        seen.append(session.predict(x, out).copy())
                    elif kind == "copy":
                        seen.append(shared.copy().predict(x))
                    elif kind == "save":
                        path = tmp_path / f"{threading.get_ident()}-{k % 2}.nncore"
                        shared.save(path)
                        seen.append(nncore.load(path).predict(x))
                    record()
                except RuntimeError as error:
                    assert "fit is running" in str(error)
                    record(refused=1)
                time.sleep(0.002)        # leave the trainer moments to get in
        return run

    def trainer():
        end = time.monotonic() + duration
        while time.monotonic() < end:
            try:
                shared.fit(xt, yt, epochs=1, batch_size=32, verbose=0)
            except RuntimeError as error:
                assert "in flight in another thread" in str(error)
                record(refused=1)
                time.sleep(0.002)
                continue
            record()
            versions.append(shared.predict(x))   # only this thread changes the weights

    serial = mlp(seed=7)
    serial.fit(xt, yt, epochs=5, batch_size=16, verbose=0)
    serial_out = serial.predict(x)

    def own_network():
        for _ in range(3):
            net = mlp(seed=7)
            net.fit(xt, yt, epochs=5, batch_size=16, verbose=0)
            assert np.array_equal(net.predict(x), serial_out)
            record()

    run_threads([reader("predict"), reader("session"), reader("copy"), reader("save"),
                 trainer, own_network, own_network], timeout=120)
    torn = sum(not any(np.array_equal(out, v) for v in versions) for out in seen)
    print({**counts, "checked outputs": len(seen), "versions": len(versions), "torn": torn})
    assert torn == 0
    assert len(seen) > 10 and len(versions) > 1


def test_set_weights_is_refused_while_another_thread_predicts(one_thread):
    net = mlp(inputs=64)
    x = np.random.default_rng(3).random((200_000, 64), dtype=np.float32)
    weights = net.build().get_weights()
    started, errors = threading.Event(), []

    def predict():
        started.set()
        net.predict(x)

    def set_weights():
        started.wait()
        for _ in range(500):
            try:
                net.set_weights(weights)
            except RuntimeError as error:
                errors.append(str(error))
                return
            time.sleep(0.0005)

    run_threads([predict, set_weights], timeout=120)
    assert errors and "Network.set_weights" in errors[0]
