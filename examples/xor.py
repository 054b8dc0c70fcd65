"""XOR, in the style of the original "Neural Network from scratch" article."""
import numpy as np

from nncore import ActivationLayer, FCLayer, Network
from nncore.activations import tanh, tanh_prime
from nncore.losses import mse, mse_prime

# four samples, each shaped (1, 2) as in the article
x_train = np.array([[[0, 0]], [[0, 1]], [[1, 0]], [[1, 1]]])
y_train = np.array([[[0]], [[1]], [[1]], [[0]]])

net = Network(seed=0)
net.add(FCLayer(2, 3))
net.add(ActivationLayer(tanh, tanh_prime))
net.add(FCLayer(3, 1))
net.add(ActivationLayer(tanh, tanh_prime))

net.use(mse, mse_prime)
net.fit(x_train, y_train, epochs=1000, learning_rate=0.1, verbose=0)

out = net.predict(x_train)
for sample, value in zip(x_train, out):
    print(f"{sample.ravel()} -> {value.item():.3f}")
