"""A plain-NumPy network in the style of the original article, as a speed
reference: per-sample forward, backward and SGD update with np.dot."""
import numpy as np


class DenseNumpy:
    def __init__(self, W, b):
        self.W, self.b = W.copy(), b.reshape(1, -1).copy()

    def forward(self, x):
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dy, learning_rate):
        dx = np.dot(dy, self.W.T)
        self.W -= learning_rate * np.dot(self.x.T, dy)
        self.b -= learning_rate * dy
        return dx


class TanhNumpy:
    def forward(self, x):
        self.x = x
        return np.tanh(x)

    def backward(self, dy, learning_rate):
        return (1 - np.tanh(self.x) ** 2) * dy


def fit(layers, x_train, y_train, epochs, learning_rate):
    for _ in range(epochs):
        for x, y in zip(x_train, y_train):
            out = x
            for layer in layers:
                out = layer.forward(out)
            grad = 2 * (out - y) / y.size
            for layer in reversed(layers):
                grad = layer.backward(grad, learning_rate)


def network(weights):
    """Dense/tanh layers from a list of (W, b) pairs."""
    layers = []
    for W, b in weights:
        layers += [DenseNumpy(W, b), TanhNumpy()]
    return layers
