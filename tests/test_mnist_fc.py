"""The article's MNIST network, 784-100-50-10 tanh with MSE, trained per sample."""

import nncore
from nncore.activations import tanh, tanh_prime
from nncore.losses import mse, mse_prime
from nncore.utils import to_categorical


def test_article_mnist_fc_reaches_90_percent(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    x_train = x_train.reshape(x_train.shape[0], 1, 28 * 28).astype("float32") / 255
    x_test = x_test.reshape(x_test.shape[0], 1, 28 * 28).astype("float32") / 255
    net = nncore.Network(seed=0)
    net.add(nncore.FCLayer(28 * 28, 100))
    net.add(nncore.ActivationLayer(tanh, tanh_prime))
    net.add(nncore.FCLayer(100, 50))
    net.add(nncore.ActivationLayer(tanh, tanh_prime))
    net.add(nncore.FCLayer(50, 10))
    net.add(nncore.ActivationLayer(tanh, tanh_prime))
    net.use(mse, mse_prime)
    net.fit(x_train, to_categorical(y_train), epochs=8, learning_rate=0.1, verbose=0)
    predicted = net.predict(x_test).reshape(-1, 10).argmax(axis=1)
    accuracy = (predicted == y_test).mean()
    print(f"article MNIST net: test accuracy {accuracy:.4f}")
    assert accuracy >= 0.90
