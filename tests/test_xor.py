import numpy as np

import nncore
from nncore.activations import tanh, tanh_prime
from nncore.losses import mse, mse_prime


def test_article_xor_learns(capsys):
    # the article's example_xor.py with only the imports changed
    x_train = np.array([[[0, 0]], [[0, 1]], [[1, 0]], [[1, 1]]])
    y_train = np.array([[[0]], [[1]], [[1]], [[0]]])
    net = nncore.Network(seed=0)
    net.add(nncore.FCLayer(2, 3))
    net.add(nncore.ActivationLayer(tanh, tanh_prime))
    net.add(nncore.FCLayer(3, 1))
    net.add(nncore.ActivationLayer(tanh, tanh_prime))
    net.use(mse, mse_prime)
    net.fit(x_train, y_train, epochs=1000, learning_rate=0.1)
    out = net.predict(x_train)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1000
    assert lines[0].startswith("epoch 1/1000   error=")
    assert out.shape == (4, 1, 1)
    assert np.array_equal(np.round(out.ravel()), [0, 1, 1, 0])
