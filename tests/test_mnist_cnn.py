"""The modern MNIST CNN trained on 5,000 images reaches >= 95% on the 10,000 test images."""
import contextlib

import numpy as np

import nncore

try:  # keep the shared test machine calm: one thread for BLAS and OpenMP if we can
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


def cnn(seed):
    return nncore.Network([nncore.Conv2D(32, 3, activation="relu"), nncore.MaxPool2D(2),
                           nncore.Conv2D(64, 3, activation="relu"), nncore.MaxPool2D(2),
                           nncore.Flatten(), nncore.Dense(128, activation="relu"),
                           nncore.Dense(10)], seed=seed)


def test_mnist_cnn_reaches_95_percent(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    x_train = x_train.reshape(-1, 28, 28, 1).astype(np.float32) / 255
    x_test = x_test.reshape(-1, 28, 28, 1).astype(np.float32) / 255
    net = cnn(seed=0)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True))
    limits = threadpool_limits(1) if threadpool_limits else contextlib.nullcontext()
    with limits:
        # plain mini-batch SGD, then one epoch at a lower rate to settle
        net.fit(x_train, y_train, epochs=3, batch_size=32, learning_rate=0.05, verbose=0)
        net.fit(x_train, y_train, epochs=1, batch_size=32, learning_rate=0.01, verbose=0)
        accuracy = np.mean(net.predict(x_test).argmax(axis=1) == y_test)
    assert accuracy >= 0.95, accuracy
