"""nncore demo: XOR the article's way, then handwritten digits the modern way.

Runs offline: the digits are scikit-learn's bundled 8x8 images
(install with `pip install ".[examples]"`).
"""
import argparse
import time

import numpy as np

import nncore
from nncore import ActivationLayer, Dense, FCLayer, Network
from nncore.activations import tanh, tanh_prime
from nncore.losses import mse, mse_prime

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=40, help="epochs of the digits network")
args = parser.parse_args()

print(f"nncore {nncore.__version__} (OpenMP {'on' if nncore.openmp_enabled() else 'off'})")

# 1. XOR with the article's API: per-sample SGD on samples shaped (1, 2)
x = np.array([[[0, 0]], [[0, 1]], [[1, 0]], [[1, 1]]])
y = np.array([[[0]], [[1]], [[1]], [[0]]])


def train_xor():
    """A fresh XOR network trained for 1000 epochs, and the milliseconds it took."""
    net = Network(seed=0)
    net.add(FCLayer(2, 3))
    net.add(ActivationLayer(tanh, tanh_prime))
    net.add(FCLayer(3, 1))
    net.add(ActivationLayer(tanh, tanh_prime))
    net.use(mse, mse_prime)
    start = time.perf_counter()
    net.fit(x, y, epochs=1000, learning_rate=0.1, verbose=0)
    return net, 1000 * (time.perf_counter() - start)


_, cold = train_xor()      # the first fit in a process also sets up nncore's machinery
xor, warm = train_xor()
print(f"\nXOR: 1000 epochs in {warm:.1f} ms warm ({cold:.1f} ms for the first call "
      f"in this process)")
for sample, value in zip(x, xor.predict(x)):
    print(f"  {sample.ravel()} -> {value.item():.3f}")

# 2. Handwritten digits (8x8) with the modern API: mini-batches, softmax cross-entropy
try:
    from sklearn.datasets import load_digits
except ImportError:
    raise SystemExit('\nthe digits demo needs scikit-learn: pip install ".[examples]"')

digits = load_digits()
images = digits.images.reshape(len(digits.images), -1) / 16.0
labels = digits.target
order = np.random.default_rng(0).permutation(len(images))
train, test = order[:1400], order[1400:]

net = Network([Dense(64, activation="relu"), Dense(32, activation="relu"), Dense(10)],
              seed=0)
net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True))
start = time.perf_counter()
history = net.fit(images[train], labels[train], epochs=args.epochs, learning_rate=0.1,
                  batch_size=16, verbose=0)
seconds = time.perf_counter() - start
print()
net.summary()
accuracy = (net.predict(images[test]).argmax(axis=1) == labels[test]).mean()
print(f"digits: {args.epochs} epochs in {seconds:.2f} s, loss {history['loss'][0]:.3f} -> "
      f"{history['loss'][-1]:.3f}, test accuracy {accuracy:.1%} on {len(test)} images")
