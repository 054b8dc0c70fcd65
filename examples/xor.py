"""XOR, in the style of the original "Neural Network from scratch" article."""
import argparse

import numpy as np

from nncore import ActivationLayer, FCLayer, Network
from nncore.activations import tanh, tanh_prime
from nncore.losses import mse, mse_prime

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--epochs", type=int, default=1000)
parser.add_argument("--learning-rate", type=float, default=0.1)
parser.add_argument("--verbose", action="store_true", help="print the error of every epoch")
args = parser.parse_args()

# four samples, each shaped (1, 2) as in the article
x_train = np.array([[[0, 0]], [[0, 1]], [[1, 0]], [[1, 1]]])
y_train = np.array([[[0]], [[1]], [[1]], [[0]]])

net = Network(seed=0)
net.add(FCLayer(2, 3))
net.add(ActivationLayer(tanh, tanh_prime))
net.add(FCLayer(3, 1))
net.add(ActivationLayer(tanh, tanh_prime))

net.use(mse, mse_prime)
net.fit(x_train, y_train, epochs=args.epochs, learning_rate=args.learning_rate,
        verbose=int(args.verbose))

out = net.predict(x_train)
for sample, value in zip(x_train, out):
    print(f"{sample.ravel()} -> {value.item():.3f}")
