"""The article's convolution examples, with only their import lines changed."""
import numpy as np

import nncore
from nncore import ActivationLayer, ConvLayer, FCLayer, FlattenLayer, Network
from nncore.activations import tanh, tanh_prime
from nncore.losses import mse, mse_prime
from nncore._plans import native_ops


def test_article_example_conv_learns(capsys, monkeypatch):
    # the article's code is unseeded; fix the data and the network's generator
    # so the test is deterministic (rare unlucky initializations stall tanh)
    np.random.seed(0)
    seeded = np.random.default_rng
    monkeypatch.setattr(np.random, "default_rng",
                        lambda seed=None: seeded(7 if seed is None else seed))
    # --- the article's example_conv.py from here on
    # training data
    x_train = [np.random.rand(10, 10, 1)]
    y_train = [np.random.rand(4, 4, 2)]

    # network
    net = Network()
    net.add(ConvLayer((10, 10, 1), (3, 3), 1))
    net.add(ActivationLayer(tanh, tanh_prime))
    net.add(ConvLayer((8, 8, 1), (3, 3), 1))
    net.add(ActivationLayer(tanh, tanh_prime))
    net.add(ConvLayer((6, 6, 1), (3, 3), 2))
    net.add(ActivationLayer(tanh, tanh_prime))

    # train
    net.use(mse, mse_prime)
    net.fit(x_train, y_train, epochs=1000, learning_rate=0.3)

    # test
    out = net.predict(x_train)
    print("predicted = ", out)
    print("expected = ", y_train)
    # --- end of the article's code
    errors = [float(line.split("error=")[1]) for line in capsys.readouterr().out.splitlines()
              if "error=" in line]
    assert len(errors) == 1000
    assert errors[-1] < 0.1 * errors[0]
    assert out.shape == (1, 4, 4, 2)
    assert np.mean((out[0] - y_train[0]) ** 2) < 0.02


def test_article_mnist_conv_network_shapes():
    # the layers of the article's example_mnist_conv.py (trained in examples/mnist_conv.py)
    net = Network()
    net.add(ConvLayer((28, 28, 1), (3, 3), 1))
    net.add(ActivationLayer(tanh, tanh_prime))
    net.add(FlattenLayer())
    net.add(FCLayer(26 * 26 * 1, 100))
    net.add(ActivationLayer(tanh, tanh_prime))
    net.add(FCLayer(100, 10))
    net.add(ActivationLayer(tanh, tanh_prime))
    net.use(mse, mse_prime)
    x = np.random.default_rng(0).random((20, 28, 28, 1))
    y = nncore.utils.to_categorical(np.arange(20) % 10)
    net.fit(x, y, epochs=2, learning_rate=0.1, verbose=0)
    assert [layer.output_shape for layer in net.layers] == \
        [(26, 26, 1), (26, 26, 1), (1, 676), (1, 100), (1, 100), (1, 10), (1, 10)]
    assert net.predict(x[:3]).shape == (3, 1, 10)
    assert native_ops(net.layers) is not None      # the whole article network runs natively
