"""Arguments that nncore must name when they are wrong, partial_fit's
classes in any order, float32 overflow told apart from NaN, and writers
that may wait for a stream of predictions to let them in."""
import threading
import time

import numpy as np
import pytest

import nncore
from nncore.layers import Dense, LeakyReLU
from nncore.sklearn import NNClassifier, NNRegressor

X = np.random.default_rng(0).normal(size=(40, 4))
Y = (X[:, 0] > 0).astype(int)


@pytest.mark.parametrize("classes", [[1, 0], [0, 1], np.array([1, 0])])
def test_partial_fit_takes_classes_in_any_order(classes):
    model = NNClassifier(hidden_layer_sizes=(4,), random_state=0)
    model.partial_fit(X, Y, classes=classes)
    assert model.classes_.tolist() == [0, 1]
    model.partial_fit(X, Y)
    assert model.predict_proba(X).shape == (40, 2)


def test_partial_fit_refuses_duplicate_classes():
    with pytest.raises(ValueError, match=r"classes=\[0, 1, 1\] lists \[1\] more than once"):
        NNClassifier().partial_fit(X, Y, classes=[0, 1, 1])
    with pytest.raises(ValueError, match="1-D"):
        NNClassifier().partial_fit(X, Y, classes=[[0, 1]])


@pytest.mark.parametrize("where", ["x", "y", "sample_weight"])
def test_finite_values_that_overflow_float32_are_reported_as_overflow(where):
    net = nncore.Network([Dense(1)], input_shape=(4,)).use("mse")
    x, y, w = np.ones((2, 4)), np.ones((2, 1)), np.ones(2)
    big = {"x": x, "y": y, "sample_weight": w}[where]
    big[0] = 1e300
    with pytest.raises(ValueError, match=f"{where} holds values too large for float32 "
                                         f"\\(largest magnitude 1e\\+300"):
        net.fit(x, y, sample_weight=w, verbose=0)
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        net.predict(np.full((2, 4), np.nan))
    net64 = nncore.Network([Dense(1)], input_shape=(4,), dtype="float64")
    assert np.isfinite(net64.predict(np.full((2, 4), 1e300))).all()   # float64 holds it


@pytest.mark.parametrize("make, match", [
    (lambda: LeakyReLU("abc"), "LeakyReLU: alpha must be a number"),
    (lambda: NNClassifier(random_state=-1).fit(X, Y),
     r"NNClassifier: random_state must be None, an integer in \[0, 2\*\*32\)"),
    (lambda: NNRegressor(input_shape=(-2, -2)).fit(X, X[:, 0]),
     r"NNRegressor: input_shape must be a tuple of positive integers, got \(-2, -2\)"),
    (lambda: NNClassifier(input_shape=(2.7, 2)).fit(X, Y),
     r"NNClassifier: input_shape must be a tuple of positive integers, got \(2.7, 2\)"),
    (lambda: NNClassifier(layers=lambda f, o: None).fit(X, Y),
     r"NNClassifier: layers\(n_features, n_outputs\) must return a non-empty list"),
    (lambda: nncore.Network([Dense(1)], input_shape=(4,)).fit(X, X[:, :1], wait=-1),
     "Network.fit: wait must be a number of seconds >= 0"),
])
def test_wrong_arguments_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_writers_can_wait_for_a_stream_of_predictions():
    net = nncore.Network([Dense(256, activation="relu"), Dense(1)], input_shape=(64,),
                         seed=0).use("mse")
    x = np.random.default_rng(1).normal(size=(2048, 64))
    y = x[:, :1].copy()
    stop, refused, served = threading.Event(), [0], [0]

    def predicting():
        while not stop.is_set():
            try:
                net.predict(x)
                served[0] += 1
            except RuntimeError:
                refused[0] += 1
                time.sleep(0.0005)

    threads = [threading.Thread(target=predicting) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.05)
        failed = 0
        for _ in range(20):
            try:
                net.set_weights(net.get_weights())
            except RuntimeError as error:
                failed += 1
                assert "pass wait=seconds" in str(error)
        assert failed >= 15                 # without wait: refused (the default, unchanged)
        for _ in range(5):
            net.fit(x, y, epochs=1, verbose=0, wait=10)
            net.set_weights(net.get_weights(), wait=10)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert served[0] > 0
