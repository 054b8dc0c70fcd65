"""A modern convolutional network on MNIST with nncore.

Conv2D(32, 3) + ReLU + MaxPool(2) -> Conv2D(64, 3) + ReLU + MaxPool(2) ->
Flatten -> Dense(128) + ReLU -> Dropout(0.5) -> Dense(10) (the network of the
README's "Convolutional networks"), softmax cross-entropy from logits,
mini-batch SGD at a learning rate of 0.05 that drops to 0.01 for the last
epoch.  Reads MNIST IDX files from --data DIR (else NNCORE_MNIST_DIR, else
../shared/data/mnist); with the 5,000-image training subset it reaches about
97% test accuracy in 4 epochs.  `--augment` puts random translations,
rotations and zooms in front of the network (training only), uses
Dropout(0.3) and trains 50 epochs (by default) with Adam on a cosine
schedule: about 98.7% test accuracy.  `--seed N` changes the initial
weights and the random draws.  `--export-onnx PATH` then writes the trained
network to PATH as an ONNX model (needs `pip install "nncore[onnx]"`;
augmentation layers are left out).
"""
import argparse
import time

import numpy as np

import nncore
from _mnist_data import add_data_argument, mnist_directory


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--augment", action="store_true",
                        help="train with image augmentation (see above)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training images (default: 4, with "
                             "--augment 50)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initial weights, shuffling, dropout and "
                             "augmentation (default: 0)")
    parser.add_argument("--export-onnx", metavar="PATH",
                        help="write the trained network to PATH as an ONNX model")
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 50 if args.augment else 4
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    directory = mnist_directory(parser, args.data)
    (x_train, y_train), (x_test, y_test) = nncore.datasets.load_mnist(directory)
    x_train = x_train.reshape(-1, 28, 28, 1).astype(np.float32) / 255
    x_test = x_test.reshape(-1, 28, 28, 1).astype(np.float32) / 255

    augmentation = [
        nncore.RandomTranslation(0.1, 0.1, fill_mode="constant"),
        nncore.RandomRotation(0.04, fill_mode="constant"),
        nncore.RandomZoom(0.1, fill_mode="constant"),
    ] if args.augment else []
    net = nncore.Network(augmentation + [
        nncore.Conv2D(32, 3, activation="relu"),
        nncore.MaxPool2D(2),
        nncore.Conv2D(64, 3, activation="relu"),
        nncore.MaxPool2D(2),
        nncore.Flatten(),
        nncore.Dense(128, activation="relu"),
        nncore.Dropout(0.3 if args.augment else 0.5),
        nncore.Dense(10),
    ], seed=args.seed)
    batch_size = 32
    steps_per_epoch = -(-len(x_train) // batch_size)
    if args.augment:
        optimizer = nncore.optimizers.Adam(nncore.schedules.CosineDecay(
            2e-3, decay_steps=args.epochs * steps_per_epoch, alpha=0.01))
    else:
        optimizer = nncore.optimizers.SGD(learning_rate=nncore.schedules.StepDecay(
            0.05, step_size=max(1, args.epochs - 1) * steps_per_epoch, factor=0.2))
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer=optimizer)
    net.build(x_train.shape[1:])
    net.summary()

    began = time.perf_counter()
    history = net.fit(x_train, y_train, epochs=args.epochs, batch_size=batch_size,
                      verbose=2 if args.augment else 1)
    elapsed = time.perf_counter() - began
    accuracy = np.mean(net.predict(x_test).argmax(axis=1) == y_test)
    print(f"trained on {len(x_train)} images in {elapsed:.1f} s; "
          f"test accuracy {accuracy:.4f}")
    if args.export_onnx:
        nncore.onnx.export(net, args.export_onnx)
        print(f"wrote {args.export_onnx}")
    return net, history


if __name__ == "__main__":
    main()
