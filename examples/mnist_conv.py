"""The article's example_mnist_conv.py on nncore.

Only the imports changed, and MNIST is read from IDX files (--data DIR, else
NNCORE_MNIST_DIR, else ../shared/data/mnist) instead of downloaded by keras
(and shuffled once, as keras serves it); the command-line options and the
test accuracy at the end are additions.
"""
import argparse

import numpy as np

from nncore import ActivationLayer, ConvLayer, FCLayer, FlattenLayer, Network
from nncore.activations import tanh, tanh_prime
from nncore.datasets import load_mnist
from nncore.losses import mse, mse_prime
from nncore.utils import to_categorical

from _mnist_data import add_data_argument, mnist_directory

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
add_data_argument(parser)
parser.add_argument("--epochs", type=int, default=100, help="passes over the 1,000 training "
                    "images, one SGD step per image (default: 100, the article's)")
args = parser.parse_args()
if args.epochs < 1:
    parser.error(f"--epochs must be at least 1, got {args.epochs}")

# load MNIST from IDX files; keras serves the training images in random order,
# the train5k subset is sorted by label, so put it in a fixed random order
(x_train, y_train), (x_test, y_test) = load_mnist(mnist_directory(parser, args.data))
order = np.random.default_rng(0).permutation(len(x_train))
x_train, y_train = x_train[order], y_train[order]

# training data: reshape and normalize input data
x_train = x_train.reshape(x_train.shape[0], 28, 28, 1)
x_train = x_train.astype('float32')
x_train /= 255
# encode output which is a number in range [0,9] into a vector of size 10
# e.g. number 3 will become [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
y_train = to_categorical(y_train)

# same for test data: 10000 samples
x_test = x_test.reshape(x_test.shape[0], 28, 28, 1)
x_test = x_test.astype('float32')
x_test /= 255
y_test = to_categorical(y_test)

# Network
net = Network()
net.add(ConvLayer((28, 28, 1), (3, 3), 1))  # input_shape=(28, 28, 1)   ;   output_shape=(26, 26, 1)
net.add(ActivationLayer(tanh, tanh_prime))
net.add(FlattenLayer())                     # input_shape=(26, 26, 1)   ;   output_shape=(1, 26*26*1)
net.add(FCLayer(26*26*1, 100))              # input_shape=(1, 26*26*1)  ;   output_shape=(1, 100)
net.add(ActivationLayer(tanh, tanh_prime))
net.add(FCLayer(100, 10))                   # input_shape=(1, 100)      ;   output_shape=(1, 10)
net.add(ActivationLayer(tanh, tanh_prime))

# train on 1000 samples (per-sample SGD, as in the article)
net.use(mse, mse_prime)
net.fit(x_train[0:1000], y_train[0:1000], epochs=args.epochs, learning_rate=0.1)

# test on 3 samples
out = net.predict(x_test[0:3])
print("\n")
print("predicted values : ")
print(out, end="\n")
print("true values : ")
print(y_test[0:3])

# (addition) accuracy on the whole test set
accuracy = np.mean(net.predict(x_test).argmax(axis=-1).ravel() == y_test.argmax(axis=-1))
print(f"test accuracy: {accuracy:.4f}")
