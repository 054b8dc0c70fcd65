"""Per-sample training speed of the article's networks: nncore vs the article's
plain-NumPy code vs a PyTorch per-sample loop (when torch is installed).

    python benchmarks/bench_fc.py            # MNIST data from ../shared/data/mnist
    NNCORE_MNIST_DIR=/path/to/mnist python benchmarks/bench_fc.py

Prints one table per workload with the median of several runs, at 1 and 2 threads.
"""
import argparse

import numpy as np

import nncore
import numpy_article
from _common import (dense_flops, fmt_gflops, fmt_rate, fmt_ratio, gemm_peak, limited_threads,
                     load_article_mnist, median_rate, median_seconds, table, try_torch)
from nncore.activations import tanh, tanh_prime
from nncore.losses import mse, mse_prime

SIZES = [784, 100, 50, 10]


def article_net(sizes, dtype, seed=0):
    net = nncore.Network(seed=seed, dtype=dtype)
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        net.add(nncore.FCLayer(n_in, n_out))
        net.add(nncore.ActivationLayer(tanh, tanh_prime))
    net.use(mse, mse_prime)
    net.build((1, sizes[0]))
    return net


def weights_of(net):
    params = net.params
    return [(params[i].astype(np.float64), params[i + 1].astype(np.float64))
            for i in range(0, len(params), 2)]


def torch_step_loop(torch, weights, x, y, epochs, learning_rate):
    """A per-sample PyTorch loop: returns a function that trains `epochs` epochs."""
    layers = []
    for W, b in weights:
        linear = torch.nn.Linear(*W.shape).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    loss_fn = torch.nn.MSELoss()
    xs = [torch.from_numpy(s) for s in x.astype(np.float64)]
    ys = [torch.from_numpy(s) for s in y.astype(np.float64)]

    def run():
        for _ in range(epochs):
            for xi, yi in zip(xs, ys):
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(xi), yi)
                loss.backward()
                optimizer.step()
    return run


def mnist_rates(threads, n_fast, n_slow):
    torch = try_torch()
    x, y = load_article_mnist(n_fast, "float64")
    net = article_net(SIZES, "float64")
    weights = weights_of(net)

    def nncore_run():
        net.fit(x, y, epochs=1, learning_rate=0.01, verbose=0)

    def numpy_run():
        numpy_article.fit(numpy_article.network(weights), x[:n_slow], y[:n_slow], 1, 0.01)

    with limited_threads(threads):
        ours = median_rate(nncore_run, n_fast)
        numpy_rate = median_rate(numpy_run, n_slow, repeats=3)
        torch_rate = (median_rate(torch_step_loop(torch, weights, x[:n_slow], y[:n_slow], 1, 0.01),
                                  n_slow, repeats=3) if torch else None)
    return ours, numpy_rate, torch_rate


def xor_seconds(threads):
    torch = try_torch()
    x = np.array([[[0, 0]], [[0, 1]], [[1, 0]], [[1, 1]]], np.float64)
    y = np.array([[[0]], [[1]], [[1]], [[0]]], np.float64)
    weights = weights_of(article_net([2, 3, 1], "float64"))

    def nncore_run():
        article_net([2, 3, 1], "float64").fit(x, y, epochs=1000, learning_rate=0.1, verbose=0)

    def numpy_run():
        numpy_article.fit(numpy_article.network(weights), x, y, 1000, 0.1)

    with limited_threads(threads):
        ours = median_seconds(nncore_run, repeats=7)
        numpy_time = median_seconds(numpy_run, repeats=3)
        torch_time = (median_seconds(torch_step_loop(torch, weights, x, y, 1000, 0.1), repeats=3)
                      if torch else None)
    return ours, numpy_time, torch_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000,
                        help="MNIST samples per nncore epoch (default 5000)")
    parser.add_argument("--slow-samples", type=int, default=1000,
                        help="samples per epoch for the NumPy and PyTorch loops")
    args = parser.parse_args()
    torch = try_torch()
    print(f"nncore {nncore.__version__}, numpy {np.__version__}, "
          f"torch {torch.__version__ if torch else 'not installed'}\n")

    rows = []
    # forward, weight gradients, and input gradients of all but the first layer
    flops = 2 * dense_flops([784, 100, 50, 10]) + dense_flops([100, 50, 10])
    for threads in (1, 2):
        ours, ref_numpy, ref_torch = mnist_rates(threads, args.samples, args.slow_samples)
        rows.append([threads, fmt_rate(ours), fmt_rate(ref_numpy), fmt_rate(ref_torch),
                     fmt_ratio(ours, ref_numpy), fmt_ratio(ours, ref_torch),
                     fmt_gflops(flops, ours, gemm_peak(threads, "float64"))])
    print("Per-sample SGD, article MNIST net 784-100-50-10 tanh/MSE, float64 (samples/s, median)")
    print(table(rows, ["threads", "nncore", "numpy", "torch", "vs numpy", "vs torch",
                       "nncore GFLOP/s (of DGEMM peak)"]))
    print("targets: >= 50,000 samples/s and >= 15x torch\n")

    rows = []
    for threads in (1, 2):
        ours, ref_numpy, ref_torch = xor_seconds(threads)
        rows.append([threads, f"{ours * 1e3:.2f}", f"{ref_numpy * 1e3:.1f}",
                     "-" if ref_torch is None else f"{ref_torch * 1e3:.1f}",
                     fmt_ratio(ref_numpy, ours), fmt_ratio(ref_torch, ours)])
    print("XOR 2-3-1 tanh/MSE, 1000 epochs of 4 samples, float64 (total ms, median)")
    print(table(rows, ["threads", "nncore", "numpy", "torch", "numpy/nncore", "torch/nncore"]))
    print("target: nncore under 10 ms")


if __name__ == "__main__":
    main()
