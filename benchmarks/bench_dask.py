"""Distributed prediction: 1,000,000 MNIST-sized rows (784 float32 values)
through the 784-256-128-10 MLP with nncore.dask.predict on a LocalCluster of
2 worker processes (1 thread each), against one local process with one
thread predicting the same blocks in a loop (the two measured in
alternation, medians reported).

The rows are MNIST training images (random ones without the data) repeated:
one block of them is scattered to every worker once, and each block of the
dask array is that same array, so the timing is prediction and scheduling,
not data generation or transfer.  Scaling efficiency is the distributed
throughput divided by (workers x the single-process throughput).

    python benchmarks/bench_dask.py [--rows 1000000] [--block 10000] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import nncore
from _common import fmt_rate, mnist_dir, table


def model() -> nncore.Network:
    return nncore.Network([nncore.Dense(256, "relu"), nncore.Dense(128, "relu"),
                           nncore.Dense(10)], input_shape=(784,), seed=0).build()


def images(count: int) -> np.ndarray:
    folder = mnist_dir()
    if (folder / "train-images-idx3-ubyte.gz").is_file():
        (x, _), _ = nncore.datasets.load_mnist(folder)
        x = x.reshape(-1, 784)
        return (x[np.arange(count) % len(x)] / 255).astype(np.float32)
    return np.random.default_rng(0).random((count, 784), dtype=np.float32)


def same_block(block: np.ndarray, index: int) -> np.ndarray:
    # block `index` of the benchmark array: the scattered block itself
    return block


def local_run(net: nncore.Network, block: np.ndarray, blocks: int) -> float:
    """Seconds for one process, one thread, to predict `blocks` blocks."""
    with nncore.threads(1):
        start = time.perf_counter()
        for _ in range(blocks):
            net.predict(block)
        return time.perf_counter() - start


def rates(net: nncore.Network, block: np.ndarray, rows: int, workers: int,
          repeats: int) -> tuple:
    """Median rows per second of the local loop and of nncore.dask.predict on
    `workers` processes, measured in alternation (after a warm-up of each) so
    both see the same load from other processes; the distributed results
    stay on the workers."""
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import nncore.dask

    blocks = rows // len(block)
    local, spread = [], []
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        shared = client.scatter(block, broadcast=True)
        parts = [da.from_delayed(dask.delayed(same_block)(shared, i), shape=block.shape,
                                 dtype=block.dtype) for i in range(blocks)]
        X = da.concatenate(parts)
        for run in range(repeats + 1):
            seconds = local_run(net, block, blocks)
            start = time.perf_counter()
            out = client.persist(nncore.dask.predict(net, X))
            wait(out)
            elapsed = time.perf_counter() - start
            del out
            if run:
                local.append(rows / seconds)
                spread.append(rows / elapsed)
    return float(np.median(local)), float(np.median(spread))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--block", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    net = model()
    block = images(args.block)
    rows = args.rows // args.block * args.block
    print(f"{rows:,} rows of 784 float32 in blocks of {args.block:,}; "
          f"{os.cpu_count()} cores; MLP 784-256-128-10; load average before: "
          f"{os.getloadavg()[0]:.2f}")
    local, spread = rates(net, block, rows, args.workers, args.repeats)
    efficiency = spread / (args.workers * local)
    print(table([["1 local process, 1 thread", fmt_rate(local), "1.00x", "-"],
                 [f"nncore.dask.predict, {args.workers} workers x 1 thread", fmt_rate(spread),
                  f"{spread / local:.2f}x", f"{efficiency:.0%}"]],
                ["setup", "rows/s", "speed-up", "scaling efficiency"]))
    print(f"load average after: {os.getloadavg()[0]:.2f} (other processes on the machine "
          f"take cores from the workers)")


if __name__ == "__main__":
    main()
