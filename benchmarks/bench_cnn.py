"""Training throughput of the MNIST CNN: nncore vs PyTorch (CPU) vs NumPy im2col.

    python benchmarks/bench_cnn.py [--threads 1 2] [--samples 1024] [--repeats 3]

Network: Conv2D(32,3)+ReLU+MaxPool(2) -> Conv2D(64,3)+ReLU+MaxPool(2) -> Flatten
-> Dense(128)+ReLU -> Dense(10) (nncore: written with activation="relu" and
with ReLU() layers, both timed), softmax cross-entropy from logits, plain SGD,
float32, random 28x28x1 inputs.  Also per-sample (batch 1) training of the
article's conv network (ConvLayer 3x3 -> tanh -> Flatten -> FC 676-100 -> tanh ->
FC 100-10 -> tanh, MSE).  Each thread count runs in its own process with
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS set (and
torch.set_num_threads), so every library gets the same threads.  Figures are
medians of `repeats` timed passes; ratios compare numbers from the same process.

The libraries' timed passes are interleaved so that the load of a shared
machine falls on all of them alike.  The nncore time split (best-of-repeats
times): GEMM = the step's matrix products timed alone through NumPy's BLAS;
im2col/col2im = nncore's own kernels timed alone; both on whole batches, so
they overstate what the fused convolution spends on them in cache-sized
groups.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import SPELLINGS, cnn_layers  # noqa: E402


def timings(runs, repeats):
    """{name: [seconds, ...]} for callables run interleaved (one warm-up each), so
    that the load of a shared machine falls on all of them alike."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            began = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - began)
    return times


def min_time(run, repeats):
    return float(np.min(timings({"run": run}, repeats)["run"]))


# ------------------------------------------------------------------ nncore
def nncore_cnn(seed=0, spelling=SPELLINGS[0]):
    import nncore
    net = nncore.Network(cnn_layers(spelling), input_shape=(28, 28, 1), seed=seed)
    return net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True)).build()


def nncore_runner(x, y, batch, spelling=SPELLINGS[0]):
    net = nncore_cnn(spelling=spelling)
    return lambda: net.fit(x, y, epochs=1, batch_size=batch, learning_rate=0.01,
                           verbose=0), net


def split_nncore(net, batch, repeats):
    """Seconds per step spent in GEMM and in im2col/col2im for this network."""
    conv1, conv2 = net.layers[0], net.layers[2]
    rng = np.random.default_rng(0)
    f32 = lambda *shape: rng.random(shape, dtype=np.float32)
    products = []                                 # (a, b) with a @ b like the step does
    for layer, first in ((conv1, True), (conv2, False)):
        # the fused convolution + pooling computes the positions the pool reads
        rows = batch * (layer.output_shape[0] // 2 * 2) * (layer.output_shape[1] // 2 * 2)
        k, f = int(np.prod(layer.kernel.shape[:3])), layer.filters
        products += [(f32(rows, k), f32(k, f)), (f32(rows, k).T, f32(rows, f))]
        if not first:
            products.append((f32(rows, f), f32(k, f).T))
    for n_in, n_out in ((1600, 128), (128, 10)):
        products += [(f32(batch, n_in), f32(n_in, n_out)), (f32(batch, n_in).T, f32(batch, n_out)),
                     (f32(batch, n_out), f32(n_in, n_out).T)]
    outs = [np.empty((a.shape[0], b.shape[1]), np.float32) for a, b in products]

    def gemms():
        for (a, b), out in zip(products, outs):
            np.matmul(a, b, out=out)

    buffers = []
    for layer in (conv1, conv2):
        op = layer.native_ops()[0]
        xin = f32(batch, int(np.prod(layer.input_shape)))
        cols = np.empty((batch, int(np.prod(layer.output_shape[:2])) *
                         int(np.prod(layer.kernel.shape[:3]))), np.float32)
        buffers.append((op, xin, cols, np.empty_like(xin)))

    def im2col_col2im():
        for i, (op, xin, cols, dx) in enumerate(buffers):
            op.im2col(xin, cols)                  # forward
            op.im2col(xin, cols)                  # backward recomputes it
            if i:                                 # the first layer needs no dx
                op.col2im(cols, dx)

    return min_time(gemms, repeats), min_time(im2col_col2im, repeats)


def article_nncore_runner(x, y):
    from nncore import ActivationLayer, ConvLayer, FCLayer, FlattenLayer, Network
    from nncore.activations import tanh, tanh_prime
    from nncore.losses import mse, mse_prime
    net = Network(seed=0)
    for layer in (ConvLayer((28, 28, 1), (3, 3), 1), ActivationLayer(tanh, tanh_prime),
                  FlattenLayer(), FCLayer(26 * 26, 100), ActivationLayer(tanh, tanh_prime),
                  FCLayer(100, 10), ActivationLayer(tanh, tanh_prime)):
        net.add(layer)
    net.use(mse, mse_prime)
    return lambda: net.fit(x, y, epochs=1, learning_rate=0.1, verbose=0)


# ----------------------------------------------------------------- PyTorch
def torch_runner(x, y, batch, threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(),
                        nn.Linear(128, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss = nn.CrossEntropyLoss()
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y.astype(np.int64))

    def epoch():
        for i in range(0, len(xt), batch):
            opt.zero_grad()
            loss(net(xt[i:i + batch]), yt[i:i + batch]).backward()
            opt.step()
    return epoch


def article_torch_runner(x, y, threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Tanh(), nn.Flatten(), nn.Linear(676, 100),
                        nn.Tanh(), nn.Linear(100, 10), nn.Tanh())
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = nn.MSELoss()
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y)

    def epoch():
        for i in range(len(xt)):
            opt.zero_grad()
            loss(net(xt[i:i + 1]), yt[i:i + 1]).backward()
            opt.step()
    return epoch


# ------------------------------------------------------------------- NumPy
class NumpyCNN:
    """The same CNN in NumPy: im2col by sliding_window_view, GEMM by matmul."""

    def __init__(self, rng):
        he = lambda shape, fan_in: rng.uniform(-1, 1, shape).astype(np.float32) * \
            np.float32(np.sqrt(6 / fan_in))
        self.params = [he((9, 32), 9), np.zeros(32, np.float32),
                       he((288, 64), 288), np.zeros(64, np.float32),
                       he((1600, 128), 1600), np.zeros(128, np.float32),
                       he((128, 10), 128), np.zeros(10, np.float32)]

    @staticmethod
    def conv(x, w, b):
        n, h, wd, c = x.shape
        oh, ow = h - 2, wd - 2
        cols = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))
        cols = cols.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, 9 * c)
        return (cols @ w + b).reshape(n, oh, ow, -1), cols

    @staticmethod
    def conv_dx(dy, w, x_shape):
        n, oh, ow, f = dy.shape
        dcols = (dy.reshape(-1, f) @ w.T).reshape(n, oh, ow, 3, 3, x_shape[3])
        dx = np.zeros(x_shape, np.float32)
        for i in range(3):
            for j in range(3):
                dx[:, i:i + oh, j:j + ow, :] += dcols[:, :, :, i, j, :]
        return dx

    @staticmethod
    def pool(x):
        n, h, w, c = x.shape
        x = x[:, :h // 2 * 2, :w // 2 * 2]
        y = x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
        mask = x == y.repeat(2, 1).repeat(2, 2)
        return y, mask

    @staticmethod
    def unpool(dy, mask, shape):
        dx = np.zeros(shape, np.float32)
        h, w = mask.shape[1:3]
        dx[:, :h, :w] = mask * dy.repeat(2, 1).repeat(2, 2)
        return dx

    def step(self, x, labels, lr):
        w1, b1, w2, b2, w3, b3, w4, b4 = self.params
        z1, cols1 = self.conv(x, w1, b1)
        a1 = np.maximum(z1, 0)
        p1, m1 = self.pool(a1)
        z2, cols2 = self.conv(p1, w2, b2)
        a2 = np.maximum(z2, 0)
        p2, m2 = self.pool(a2)
        f = p2.reshape(len(x), -1)
        h = np.maximum(f @ w3 + b3, 0)
        logits = h @ w4 + b4
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        d4 = e / e.sum(axis=1, keepdims=True)
        d4[np.arange(len(x)), labels] -= 1
        d4 /= len(x)
        dh = (d4 @ w4.T) * (h > 0)
        df = (dh @ w3.T).reshape(p2.shape)
        dz2 = self.unpool(df, m2, a2.shape) * (z2 > 0)
        dp1 = self.conv_dx(dz2, w2, p1.shape)
        dz1 = self.unpool(dp1, m1, a1.shape) * (z1 > 0)
        grads = [cols1.T @ dz1.reshape(-1, 32), dz1.sum(axis=(0, 1, 2)),
                 cols2.T @ dz2.reshape(-1, 64), dz2.sum(axis=(0, 1, 2)),
                 f.T @ dh, dh.sum(axis=0), h.T @ d4, d4.sum(axis=0)]
        for p, g in zip(self.params, grads):
            p -= np.float32(lr) * g


def numpy_runner(x, y, batch):
    net = NumpyCNN(np.random.default_rng(0))

    def epoch():
        for i in range(0, len(x), batch):
            net.step(x[i:i + batch], y[i:i + batch], 0.01)
    return epoch


# ------------------------------------------------------------------ driver
def worker(args):
    import nncore
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    from _common import gemm_peak
    result = {"threads": args.threads[0], "openmp": nncore.openmp_enabled(), "batches": {},
              "peak": gemm_peak(args.threads[0])}
    for batch in args.batches:
        runs = {}
        runs["nncore"], net = nncore_runner(x, y, batch)
        runs["nncore_layers"], _ = nncore_runner(x, y, batch, SPELLINGS[1])
        runs["numpy"] = numpy_runner(x, y, batch)
        if have_torch:
            runs["torch"] = torch_runner(x, y, batch, args.threads[0])
        times = timings(runs, args.repeats)
        row = {name: len(x) / float(np.median(t)) for name, t in times.items()}
        # time split of one nncore step, from best-of-repeats times (least disturbed)
        gemm, im2col = split_nncore(net, batch, args.repeats)
        step = min(times["nncore"]) * batch / len(x)
        row["gemm_share"], row["im2col_share"] = gemm / step, im2col / step
        result["batches"][batch] = row
    n = args.article_samples
    xa, ya = x[:n].astype(np.float32), np.eye(10, dtype=np.float32)[y[:n]].reshape(n, 1, 10)
    runs = {"article_nncore": article_nncore_runner(xa, ya)}
    if have_torch:
        runs["article_torch"] = article_torch_runner(xa, ya.reshape(n, 10), args.threads[0])
    for name, t in timings(runs, args.repeats).items():
        result[name] = n / float(np.median(t))
    print(json.dumps(result))


def ratio(a, b):
    return f"{a / b:6.2f}x" if a and b else "     -"


def main():
    from _common import CNN_FORWARD_FLOPS, fmt_gflops
    # a training step: the forward products, the weight gradients (as many
    # again) and the input gradients of every layer but the first convolution
    train_flops = 3 * CNN_FORWARD_FLOPS - 2 * 26 * 26 * 9 * 32
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--article-samples", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    results = []
    for threads in args.threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
        command = [sys.executable, __file__, "--worker", "--threads", str(threads),
                   "--samples", str(args.samples), "--repeats", str(args.repeats),
                   "--article-samples", str(args.article_samples), "--batches"] + \
            [str(b) for b in args.batches]
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    print(f"MNIST CNN training, float32, {args.samples} samples, median of {args.repeats} "
          f"(OpenMP {'on' if results[0]['openmp'] else 'off'}); samples/s")
    print(f"{'threads':>7} {'batch':>5} {'nncore':>8} {'ReLU()s':>8} {'PyTorch':>8} {'NumPy':>8} "
          f"{'vs torch':>8} {'vs NumPy':>8}   GEMM alone / im2col+col2im alone"
          f"   nncore GFLOP/s (of SGEMM peak)")
    for r in results:
        for batch, row in r["batches"].items():
            torch_speed = row.get("torch")
            print(f"{r['threads']:>7} {batch:>5} {row['nncore']:8.0f} "
                  f"{row['nncore_layers']:8.0f} "
                  f"{torch_speed or float('nan'):8.0f} {row['numpy']:8.0f} "
                  f"{ratio(row['nncore'], torch_speed):>8} {ratio(row['nncore'], row['numpy']):>8}"
                  f"   {row['gemm_share']:10.0%} / {row['im2col_share']:5.0%}"
                  f"   {fmt_gflops(train_flops, row['nncore'], r['peak'])}")
    print("nncore: the network written with activation='relu'; ReLU()s: the same network "
          "with ReLU() layers after Conv2D and Dense (the lowering runs both as the same ops); "
          "vs torch / vs NumPy compare the first")
    print("GEMM alone / im2col alone: the step's matrix products (through NumPy) and its "
          "im2col/col2im, each timed alone on whole batches, as shares of a step; the fused "
          "convolution runs them in cache-sized groups, so together they can pass 100%")
    print("GFLOP/s count a training step as the forward products, as many again for the "
          "weight gradients and the input gradients of all but the first convolution "
          f"({train_flops / 1e6:.1f} MFLOP per sample)")
    print(f"\nArticle conv net, per-sample SGD ({args.article_samples} samples); samples/s")
    print(f"{'threads':>7} {'nncore':>8} {'PyTorch':>8} {'vs torch':>8}")
    for r in results:
        t = r.get("article_torch")
        print(f"{r['threads']:>7} {r['article_nncore']:8.0f} {t or float('nan'):8.0f} "
              f"{ratio(r['article_nncore'], t):>8}")


if __name__ == "__main__":
    main()
