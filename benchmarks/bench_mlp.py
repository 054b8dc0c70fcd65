"""Mini-batch training throughput of a 784-256-128-10 ReLU MLP (softmax
cross-entropy, float32) with Adam and plain SGD: nncore vs PyTorch CPU (when
installed) vs a plain NumPy implementation, at 1 and 2 threads.

    python benchmarks/bench_mlp.py [--epochs 2] [--repeats 3]

Every implementation trains on the same 5,000 MNIST images (random data when
the files are absent), shuffling every epoch; the figure is samples per
second, the median of the repeats (which take turns between the
implementations).  Threads are set for every library at once (threadpoolctl,
nncore.threads, torch.set_num_threads).  The ratio column is nncore divided
by the faster of PyTorch and NumPy in the same setting.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nncore  # noqa: E402
from _common import dense_flops, fmt_gflops, gemm_peak, limited_threads, mnist_dir  # noqa: E402

SIZES = (784, 256, 128, 10)
LR = {"adam": 1e-3, "sgd": 0.01}


def load_data():
    try:
        (x, y), _ = nncore.datasets.load_mnist(mnist_dir())
        return x.reshape(len(x), -1).astype(np.float32) / 255, y.astype(np.int64)
    except (OSError, ValueError):
        rng = np.random.default_rng(0)
        return rng.random((5000, 784), np.float32), rng.integers(0, 10, 5000)


# ------------------------------------------------------------------- nncore
def nncore_trainer(optimizer, batch):
    net = nncore.Network([nncore.Dense(SIZES[1], "relu"), nncore.Dense(SIZES[2], "relu"),
                          nncore.Dense(SIZES[3])], seed=0)
    opt = nncore.optimizers.Adam(LR["adam"]) if optimizer == "adam" else \
        nncore.optimizers.SGD(LR["sgd"])
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer=opt)

    def run(x, y, epochs):
        net.fit(x, y, epochs=epochs, batch_size=batch, verbose=0)
    return run


# -------------------------------------------------------------------- NumPy
def numpy_trainer(optimizer, batch):
    rng = np.random.default_rng(0)
    params = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        limit = np.sqrt(6 / (n_in + n_out))
        params += [rng.uniform(-limit, limit, (n_in, n_out)).astype(np.float32),
                   np.zeros(n_out, np.float32)]
    grads = [np.empty_like(p) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step = [0]

    def train_step(xb, yb):
        W1, b1, W2, b2, W3, b3 = params
        h1 = xb @ W1
        h1 += b1
        np.maximum(h1, 0, out=h1)
        h2 = h1 @ W2
        h2 += b2
        np.maximum(h2, 0, out=h2)
        z = h2 @ W3
        z += b3
        z -= z.max(1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(1, keepdims=True)
        z[np.arange(len(yb)), yb] -= 1
        z /= len(yb)                                   # dL/dlogits
        np.matmul(h2.T, z, out=grads[4])
        z.sum(0, out=grads[5])
        d2 = z @ W3.T
        d2 *= h2 > 0
        np.matmul(h1.T, d2, out=grads[2])
        d2.sum(0, out=grads[3])
        d1 = d2 @ W2.T
        d1 *= h1 > 0
        np.matmul(xb.T, d1, out=grads[0])
        d1.sum(0, out=grads[1])
        step[0] += 1
        if optimizer == "sgd":
            for p, g in zip(params, grads):
                g *= LR["sgd"]
                p -= g
            return
        t = step[0]
        lr_t = LR["adam"] * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        for p, g, mi, vi in zip(params, grads, m, v):
            mi *= 0.9
            mi += 0.1 * g
            g *= g
            vi *= 0.999
            vi += 0.001 * g
            np.sqrt(vi, out=g)
            g += 1e-7
            np.divide(mi, g, out=g)
            g *= lr_t
            p -= g

    def run(x, y, epochs):
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for start in range(0, len(x), batch):
                index = order[start:start + batch]
                train_step(x[index], y[index])
    return run


# ------------------------------------------------------------------ PyTorch
def torch_trainer(optimizer, batch):
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=LR["adam"], eps=1e-7) \
        if optimizer == "adam" else torch.optim.SGD(model.parameters(), lr=LR["sgd"])
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(x, y, epochs):
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)      # no copies
        for _ in range(epochs):
            order = torch.randperm(len(tx))
            for start in range(0, len(tx), batch):
                index = order[start:start + batch]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(tx[index]), ty[index])
                loss.backward()
                opt.step()
    return run


def measure(impls, optimizer, batch, x, y, epochs, repeats):
    """samples/s of each implementation; the repeats take turns so that a
    change in machine load hits every implementation alike."""
    runs = {name: make(optimizer, batch) for name, make in impls.items()}
    for run in runs.values():
        run(x[:max(batch * 4, 512)], y[:max(batch * 4, 512)], 1)      # warm-up
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            began = time.perf_counter()
            run(x, y, epochs)
            times[name].append(time.perf_counter() - began)
    return {name: len(x) * epochs / float(np.median(t)) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    x, y = load_data()
    impls = {"nncore": nncore_trainer, "numpy": numpy_trainer}
    try:
        import torch
        impls["torch"] = torch_trainer
        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    print(f"MLP 784-256-128-10 ReLU, softmax CE, float32, {len(x)} samples x "
          f"{args.epochs} epoch(s), median of {args.repeats}; torch {torch_version}; "
          f"nncore OpenMP {'on' if nncore.openmp_enabled() else 'off'}")
    peaks = {threads: gemm_peak(threads) for threads in args.threads}
    print("SGEMM peak: " + ", ".join(f"{peaks[t]:.0f} GFLOP/s at {t} thread(s)"
                                     for t in args.threads))
    # a training step: the forward products, the weight gradients (as many
    # again) and the input gradients of every layer but the first
    flops = 2 * dense_flops(SIZES) + dense_flops(SIZES[1:])
    header = f"{'optimizer':>9} {'batch':>5} {'thr':>3} " + "".join(
        f"{name + ' samples/s':>18}" for name in impls) + f"{'nncore/best':>13}" + \
        f"{'nncore GFLOP/s (of peak)':>26}"
    print(header)
    print("-" * len(header))
    best_of_threads = {}
    for optimizer in ("adam", "sgd"):
        for batch in args.batches:
            for threads in args.threads:
                with limited_threads(threads):
                    rates = measure(impls, optimizer, batch, x, y, args.epochs, args.repeats)
                for name, rate in rates.items():
                    key = (optimizer, batch, name)
                    best_of_threads[key] = max(best_of_threads.get(key, (0, 0)),
                                               (rate, threads))
                best = max(v for k, v in rates.items() if k != "nncore")
                print(f"{optimizer:>9} {batch:>5} {threads:>3} " +
                      "".join(f"{rates[name]:>18,.0f}" for name in impls) +
                      f"{rates['nncore'] / best:>12.2f}x" +
                      f"{fmt_gflops(flops, rates['nncore'], peaks[threads]):>26}", flush=True)
    print("\nbest thread count for each library (the target: nncore >= 1.0x the faster "
          "of the others)")
    for optimizer in ("adam", "sgd"):
        for batch in args.batches:
            ours, our_threads = best_of_threads[(optimizer, batch, "nncore")]
            rate, threads, name = max(best_of_threads[(optimizer, batch, other)] + (other,)
                                      for other in impls if other != "nncore")
            print(f"{optimizer:>9} {batch:>5}  nncore {ours:>9,.0f} ({our_threads} thr)  "
                  f"best other {name} {rate:>9,.0f} ({threads} thr)  {ours / rate:.2f}x")


if __name__ == "__main__":
    main()
