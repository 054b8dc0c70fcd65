"""Training on every core: samples/s at 1 and 2 threads, nncore beside PyTorch.

    python benchmarks/bench_threads.py [--repeats 3] [--threads 1 2] [--only mlp|cnn]

Networks: the MLP 784-256-128-10 and the MNIST CNN conv32-pool-conv64-pool-
128-10, float32, softmax cross-entropy from logits, plain SGD, random
MNIST-shaped inputs; nncore written with `activation="relu"` and with
separate `ReLU()` layers (and, for comparison, with every batch run whole
on the calling thread, "unsharded"), PyTorch as nn.Sequential.  Batches of
32, 128 and 512.  Every (library, spelling, threads) run of one batch size is timed in
turn, `repeats` times, so the load of a shared machine falls on all of them
alike; the table gives the median samples/s with the range of the repeats,
and the scaling (2-thread median over 1-thread median) of each.

The CPU time of the process is printed too: on a machine shared with other
work, wall-clock scaling understates what two free cores would give.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import SPELLINGS, cnn_layers, mlp_layers, table, try_torch  # noqa: E402

SAMPLES = {"mlp": 8192, "cnn": 1024}


def nncore_epoch(kind, spelling, x, y, batch, shards=None):
    """An epoch of nncore training; with shards=1, every batch runs whole on
    the calling thread (BLAS threaded for large problems), as before batches
    ran in shards."""
    import nncore
    from nncore import _plans
    layers = mlp_layers(spelling) if kind == "mlp" else cnn_layers(spelling)
    net = nncore.Network(layers, input_shape=x.shape[1:], seed=0)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="sgd")
    default = _plans.TRAINING_SHARDS
    _plans.TRAINING_SHARDS = shards or default      # read when the plan is made
    try:
        net.fit(x[:batch], y[:batch], epochs=1, batch_size=batch, verbose=0)
    finally:
        _plans.TRAINING_SHARDS = default

    def run(threads):
        with nncore.threads(threads):
            net.fit(x, y, epochs=1, batch_size=batch, learning_rate=0.01, verbose=0)
    return run


def torch_epoch(kind, x, y, batch):
    torch = try_torch()
    nn = torch.nn
    torch.manual_seed(0)
    if kind == "mlp":
        net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                            nn.Linear(128, 10))
        xt = torch.from_numpy(x)
    else:
        net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10))
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss = nn.CrossEntropyLoss()

    def run(threads):
        torch.set_num_threads(threads)
        for i in range(0, len(xt), batch):
            opt.zero_grad()
            loss(net(xt[i:i + batch]), yt[i:i + batch]).backward()
            opt.step()
    return run


def measure(kind, batch, threads, repeats):
    """{(name, threads): [samples/s, ...]} and the CPU seconds per name."""
    rng = np.random.default_rng(0)
    n = SAMPLES[kind]
    shape = (784,) if kind == "mlp" else (28, 28, 1)
    x = rng.random((n,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, n)
    runs = {f"nncore {s}": nncore_epoch(kind, s, x, y, batch) for s in SPELLINGS}
    runs[f"nncore {SPELLINGS[0]}, unsharded"] = nncore_epoch(kind, SPELLINGS[0], x, y, batch,
                                                           shards=1)
    if try_torch():
        runs["PyTorch"] = torch_epoch(kind, x, y, batch)
    rates = {(name, t): [] for name in runs for t in threads}
    cpu = {key: [] for key in rates}
    for name, run in runs.items():
        for t in threads:
            run(t)                                   # warm-up
    for _ in range(repeats):
        for (name, t) in rates:
            wall, used = time.perf_counter(), time.process_time()
            runs[name](t)
            wall, used = time.perf_counter() - wall, time.process_time() - used
            rates[(name, t)].append(n / wall)
            cpu[(name, t)].append(used / wall)
    return rates, cpu


def report(kinds=("mlp", "cnn"), batches=(32, 128, 512), threads=(1, 2), repeats=3):
    """Print one table per network."""
    first, last = threads[0], threads[-1]
    for kind in kinds:
        rows = []
        for batch in batches:
            rates, cpu = measure(kind, batch, threads, repeats)
            for name in dict.fromkeys(name for name, _ in rates):
                cells = [f"{kind} b{batch}", name]
                for t in threads:
                    r = rates[(name, t)]
                    cells.append(f"{statistics.median(r):,.0f} ({min(r):,.0f}-{max(r):,.0f})")
                scaling = (statistics.median(rates[(name, last)])
                           / statistics.median(rates[(name, first)]))
                cells.append(f"{scaling:.2f}x")
                cells.append("/".join(f"{statistics.median(cpu[(name, t)]):.2f}" for t in threads))
                rows.append(cells)
        print(table(rows, ["network", "library"] + [f"{t} thr samples/s (range)"
                                                     for t in threads]
                    + [f"{last}/{first} thr", "cores busy"]), flush=True)
        print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--only", choices=["mlp", "cnn"])
    args = parser.parse_args()
    report(["mlp", "cnn"] if args.only is None else [args.only], args.batches, args.threads,
           args.repeats)


if __name__ == "__main__":
    main()
