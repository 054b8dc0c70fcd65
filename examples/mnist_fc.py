"""The article's fully connected MNIST network (784-100-50-10, tanh, MSE),
trained per sample on MNIST IDX files.

    python examples/mnist_fc.py --data ../shared/data/mnist
"""
import argparse
import time

from _mnist_data import add_data_argument, mnist_directory

import nncore
from nncore import ActivationLayer, FCLayer, Network
from nncore.activations import tanh, tanh_prime
from nncore.losses import mse, mse_prime
from nncore.utils import to_categorical

parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
add_data_argument(parser)
parser.add_argument("--epochs", type=int, default=10,
                    help="passes over the training images (default: 10)")
parser.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                    help="the network's floating-point type (default: float32)")
args = parser.parse_args()

(x_train, y_train), (x_test, y_test) = nncore.datasets.load_mnist(
    mnist_directory(parser, args.data))
# each sample is a (1, 784) row of pixels in [0, 1], as in the article
x_train = x_train.reshape(-1, 1, 28 * 28).astype("float32") / 255
x_test = x_test.reshape(-1, 1, 28 * 28).astype("float32") / 255

net = Network(seed=0, dtype=args.dtype)
net.add(FCLayer(28 * 28, 100))
net.add(ActivationLayer(tanh, tanh_prime))
net.add(FCLayer(100, 50))
net.add(ActivationLayer(tanh, tanh_prime))
net.add(FCLayer(50, 10))
net.add(ActivationLayer(tanh, tanh_prime))
net.use(mse, mse_prime)
net.summary()

start = time.perf_counter()
net.fit(x_train, to_categorical(y_train), epochs=args.epochs, learning_rate=0.1)
seconds = time.perf_counter() - start
print(f"trained {args.epochs * len(x_train):,} samples in {seconds:.2f} s "
      f"({args.epochs * len(x_train) / seconds:,.0f} samples/s, one SGD step per sample)")

predicted = net.predict(x_test).reshape(-1, 10).argmax(axis=1)
print(f"test accuracy on {len(x_test):,} images: {(predicted == y_test).mean():.2%}")
