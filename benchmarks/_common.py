"""Shared helpers for the benchmarks: timing, thread limits, tables."""
from __future__ import annotations

import contextlib
import os
import statistics
import time
from pathlib import Path

import numpy as np

DEFAULT_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def mnist_dir() -> Path:
    return Path(os.environ.get("NNCORE_MNIST_DIR", DEFAULT_MNIST))


def median_rate(run, items: int, repeats: int = 5) -> float:
    """Median items per second of run() over `repeats` runs (after one warm-up)."""
    run()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(items / (time.perf_counter() - start))
    return statistics.median(rates)


def median_seconds(run, repeats: int = 5) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextlib.contextmanager
def limited_threads(n: int):
    """Limit BLAS/OpenMP threads of every library (NumPy, SciPy, nncore, torch)."""
    from threadpoolctl import threadpool_limits

    import nncore
    torch = try_torch()
    previous_torch = torch.get_num_threads() if torch else None
    with threadpool_limits(n), nncore.threads(n):
        if torch:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch:
                torch.set_num_threads(previous_torch)


def gemm_peak(threads: int, dtype="float32") -> float:
    """GFLOP/s of a large GEMM through SciPy's BLAS (the one nncore calls) on
    `threads` threads: the best of several runs, the machine's limit."""
    import nncore
    from scipy.linalg import blas
    # Fortran order: SciPy's wrapper passes it to BLAS without a copy
    a = np.asfortranarray(np.random.default_rng(0).random((1024, 1024)).astype(dtype))
    gemm = blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm
    with nncore.threads(threads):
        gemm(1.0, a, a)
        best = min(_seconds(lambda: gemm(1.0, a, a)) for _ in range(15))
    return 2 * 1024 ** 3 / best / 1e9


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def fmt_gflops(flops_per_sample: float, samples_per_second: float, peak: float) -> str:
    """'GFLOP/s (share of the GEMM peak)' reached at that rate."""
    gflops = flops_per_sample * samples_per_second / 1e9
    return f"{gflops:.1f} ({100 * gflops / peak:.0f}%)"


def dense_flops(sizes, per_sample_rows: int = 1) -> int:
    """Multiply-adds x 2 of one sample through dense layers of these sizes."""
    return 2 * per_sample_rows * sum(a * b for a, b in zip(sizes, sizes[1:]))


# the forward products of one sample of the MNIST CNN used by the benchmarks:
# conv 3x3x1x32 on 26x26, conv 3x3x32x64 on 11x11, dense 1600x128 and 128x10
CNN_FORWARD_FLOPS = 2 * (26 * 26 * 9 * 32 + 11 * 11 * 288 * 64 + 1600 * 128 + 128 * 10)


# the two ways of writing an activation: as the layer's `activation=`, or as
# a layer of its own (as PyTorch users write nn.ReLU()); the lowering pass
# should run both as the same ops
SPELLINGS = ("activation=", "ReLU() layers")


def mlp_layers(spelling: str, sizes=(256, 128, 10)):
    """The MLP's layers (input size from the data) in one spelling."""
    import nncore
    layers = []
    for units in sizes[:-1]:
        layers += ([nncore.Dense(units, activation="relu")] if spelling == SPELLINGS[0]
                   else [nncore.Dense(units), nncore.ReLU()])
    return layers + [nncore.Dense(sizes[-1])]


def cnn_layers(spelling: str):
    """The MNIST CNN conv32-pool-conv64-pool-128-10 in one spelling."""
    import nncore
    fused = spelling == SPELLINGS[0]

    def with_relu(layer_class, *args):
        return ([layer_class(*args, activation="relu")] if fused
                else [layer_class(*args), nncore.ReLU()])
    return (with_relu(nncore.Conv2D, 32, 3) + [nncore.MaxPool2D(2)]
            + with_relu(nncore.Conv2D, 64, 3) + [nncore.MaxPool2D(2), nncore.Flatten()]
            + with_relu(nncore.Dense, 128) + [nncore.Dense(10)])


def try_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def table(rows, headers) -> str:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                       enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt_rate(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_ratio(a, b) -> str:
    return "-" if a is None or b is None else f"{a / b:.1f}x"


def load_article_mnist(n: int, dtype):
    """n training samples shaped (1, 784) and one-hot targets (1, 10), like the article."""
    import nncore
    (x, y), _ = nncore.datasets.load_mnist(mnist_dir())
    order = np.random.default_rng(0).permutation(len(x))[:n]
    x = x[order].reshape(-1, 1, 784).astype(dtype) / 255
    targets = np.eye(10, dtype=dtype)[y[order]].reshape(-1, 1, 10)
    return x, targets
