"""Embedding costs: single-sample predict latency, batch throughput, threads,
import time and memory — nncore next to PyTorch and the raw BLAS calls.

    python benchmarks/bench_inference.py
"""
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

import nncore
from _common import (CNN_FORWARD_FLOPS, SPELLINGS, cnn_layers, dense_flops, fmt_gflops,
                     gemm_peak, median_rate as throughput, mlp_layers, table, try_torch)

MLP_SIZES = [784, 256, 128, 10]


def latency(run, calls=3000):
    """(median, p99) microseconds of run()."""
    for _ in range(300):
        run()
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        run()
        times.append(time.perf_counter_ns() - start)
    times.sort()
    return times[len(times) // 2] / 1e3, times[int(len(times) * 0.99)] / 1e3


def nncore_mlp(spelling=SPELLINGS[0]):
    return nncore.Network(mlp_layers(spelling, MLP_SIZES[1:]),
                          input_shape=(MLP_SIZES[0],), seed=0).build()


def nncore_cnn(spelling=SPELLINGS[0]):
    if not hasattr(nncore, "Conv2D"):
        return None
    return nncore.Network(cnn_layers(spelling), input_shape=(28, 28, 1), seed=0).build()


def torch_mlp(torch, net):
    layers = []
    params = net.params
    for i in range(0, len(params), 2):
        W, b = params[i], params[i + 1]
        linear = torch.nn.Linear(*W.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1]).eval()


def torch_cnn(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128),
                         nn.ReLU(), nn.Linear(128, 10)).eval()


def torch_predict(torch, model, x):
    def run():
        with torch.inference_mode():
            return model(x)
    return run


def raw_blas_mlp(net, x):
    W = net.params

    def run():
        h = np.maximum(x @ W[0] + W[1], 0)
        h = np.maximum(h @ W[2] + W[3], 0)
        return h @ W[4] + W[5]
    return run


def threaded_throughput(predict, x, n_threads, seconds=1.0):
    """Samples/s of n_threads Python threads each calling predict(x)."""
    counts = [0] * n_threads
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(n_threads)

    def worker(k):
        barrier.wait()
        while time.perf_counter() < stop:
            for _ in range(50):
                predict(x)
            counts[k] += 50 * len(x)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def import_cost(module):
    # peak RSS from /proc (getrusage's ru_maxrss survives exec: it would be the parent's)
    code = (f"import time; t = time.perf_counter(); import {module}; "
            "print(time.perf_counter() - t, [l.split()[1] for l in open('/proc/self/status') "
            "if l.startswith('VmHWM')][0])")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(5)]
    seconds = statistics.median(float(r[0]) for r in runs)
    rss_mb = statistics.median(int(r[1]) for r in runs) / 1024
    return seconds, rss_mb


TRAIN_CNN = {
    "nncore": """
import numpy as np, nncore
net = nncore.Network([nncore.Conv2D(32, 3, activation="relu"), nncore.MaxPool2D(2),
                      nncore.Conv2D(64, 3, activation="relu"), nncore.MaxPool2D(2),
                      nncore.Flatten(), nncore.Dense(128, activation="relu"), nncore.Dense(10)],
                     seed=0).use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                                 optimizer=nncore.optimizers.SGD(0.01))
x = np.random.default_rng(0).random((1024, 28, 28, 1), np.float32)
y = np.random.default_rng(1).integers(0, 10, 1024)
net.fit(x, y, epochs=1, batch_size=128, verbose=0)
""",
    "torch": """
import numpy as np, torch
nn = torch.nn
model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                      nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(),
                      nn.Linear(128, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x = torch.from_numpy(np.random.default_rng(0).random((1024, 1, 28, 28), np.float32))
y = torch.from_numpy(np.random.default_rng(1).integers(0, 10, 1024))
for i in range(0, 1024, 128):
    opt.zero_grad()
    nn.functional.cross_entropy(model(x[i:i + 128]), y[i:i + 128]).backward()
    opt.step()
""",
}


def training_peak_rss(name):
    """Peak RSS (MB) of a fresh process training the MNIST CNN at batch 128."""
    code = TRAIN_CNN[name] + ("\nprint([l.split()[1] for l in open('/proc/self/status') "
                              "if l.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[-1]) / 1024


def main():
    torch = try_torch()
    if torch:
        torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    rows = []
    mlp = nncore_mlp()
    session = nncore.InferenceSession(mlp)
    x1 = rng.random((1, 784), np.float32)
    out1 = np.empty((1, 10), np.float32)
    through_network = latency(lambda: mlp.predict(x1))
    ours = latency(lambda: session.predict(x1, out1))
    raw = latency(raw_blas_mlp(mlp, x1))
    theirs = latency(torch_predict(torch, torch_mlp(torch, mlp), torch.from_numpy(x1))) \
        if torch else None
    rows.append(["MLP 784-256-128-10", *[f"{v:.1f}" for v in ours], f"{raw[0]:.1f}",
                 *([f"{v:.1f}" for v in theirs] if theirs else ["-", "-"]),
                 f"{theirs[0] / ours[0]:.1f}x" if theirs else "-", f"{ours[0] / raw[0]:.2f}"])
    cnn = nncore_cnn()
    if cnn is not None:
        xc = rng.random((1, 28, 28, 1), np.float32)
        cnn_session, outc = nncore.InferenceSession(cnn), np.empty((1, 10), np.float32)
        ours_c = latency(lambda: cnn_session.predict(xc, outc), calls=1000)
        theirs_c = latency(torch_predict(torch, torch_cnn(torch),
                                         torch.from_numpy(xc.transpose(0, 3, 1, 2).copy())),
                           calls=1000) if torch else None
        rows.append(["CNN (MNIST)", *[f"{v:.1f}" for v in ours_c], "-",
                     *([f"{v:.1f}" for v in theirs_c] if theirs_c else ["-", "-"]),
                     f"{theirs_c[0] / ours_c[0]:.1f}x" if theirs_c else "-", "-"])
    for name, build, x in (("MLP", nncore_mlp, x1), ("CNN", nncore_cnn, xc if cnn else None)):
        if x is None:
            continue
        spelled = [nncore.InferenceSession(build(spelling)) for spelling in SPELLINGS]
        out = np.empty((1, 10), np.float32)
        both = [latency(lambda: s.predict(x, out), calls=1000)[0] for s in spelled]
        rows.append([f"{name}, {SPELLINGS[1]} / {SPELLINGS[0]}", f"{both[1]:.1f}", "-", "-",
                     "-", "-", "-", f"{both[1] / both[0]:.2f}x the time"])
    print(f"Single-sample predict latency (microseconds); Network.predict: "
          f"p50 {through_network[0]:.1f}, p99 {through_network[1]:.1f}; the table uses "
          f"InferenceSession.predict(x, out)")
    print(table(rows, ["model", "nncore p50", "nncore p99", "raw BLAS p50", "torch p50",
                       "torch p99", "torch/nncore", "nncore/raw"]))
    print("targets: MLP >= 3x lower than torch and within 1.3x of raw BLAS; CNN >= 2x\n")

    rows = []
    x1000 = rng.random((1000, 784), np.float32)
    ours_t = throughput(lambda: mlp.predict(x1000, batch_size=1000), 1000)
    theirs_t = throughput(torch_predict(torch, torch_mlp(torch, mlp), torch.from_numpy(x1000)),
                          1000) if torch else None
    peak = gemm_peak(2)
    rows.append(["MLP", f"{ours_t:,.0f}", f"{theirs_t:,.0f}" if theirs_t else "-",
                 f"{ours_t / theirs_t:.2f}x" if theirs_t else "-",
                 fmt_gflops(dense_flops(MLP_SIZES), ours_t, peak)])
    if cnn is not None:
        xc1000 = rng.random((1000, 28, 28, 1), np.float32)
        ours_ct = throughput(lambda: cnn.predict(xc1000, batch_size=1000), 1000, repeats=3)
        theirs_ct = throughput(torch_predict(torch, torch_cnn(torch), torch.from_numpy(
            xc1000.transpose(0, 3, 1, 2).copy())), 1000, repeats=3) if torch else None
        rows.append(["CNN", f"{ours_ct:,.0f}", f"{theirs_ct:,.0f}" if theirs_ct else "-",
                     f"{ours_ct / theirs_ct:.2f}x" if theirs_ct else "-",
                     fmt_gflops(CNN_FORWARD_FLOPS, ours_ct, peak)])
    print("Batch-1000 predict throughput (samples/s, 2 threads)")
    print(table(rows, ["model", "nncore", "torch", "nncore/torch",
                       "nncore GFLOP/s (of 2-thread SGEMM peak)"]))
    print("target: >= 1.0x\n")

    rows = []
    large = [("MLP", mlp, rng.random((8192, 784), np.float32))]
    if cnn is not None:
        large.append(("CNN", cnn, rng.random((2048, 28, 28, 1), np.float32)))
    for name, net, x in large:
        rates = []
        for threads in (1, 2):
            with nncore.threads(threads):
                rates.append(throughput(lambda: net.predict(x), len(x), repeats=5))
        rows.append([f"{name}, {len(x):,} samples", f"{rates[0]:,.0f}", f"{rates[1]:,.0f}",
                     f"{rates[1] / rates[0]:.2f}x"])
    print("One predict call with the default chunks, samples/s")
    print(table(rows, ["call", "1 thread", "2 threads", "scaling"]))
    print("target: 2 threads >= 1.7x one\n")

    rows = []
    with nncore.threads(1):
        for label, batch in (("1 sample", x1), ("32 samples", rng.random((32, 784), np.float32))):
            one = threaded_throughput(session.predict, batch, 1)
            two = threaded_throughput(session.predict, batch, 2)
            rows.append([label, f"{one:,.0f}", f"{two:,.0f}", f"{two / one:.2f}x"])
    print("Python threads predicting on one MLP session (one BLAS thread each), samples/s")
    print(table(rows, ["per call", "1 thread", "2 threads", "scaling"]))
    print("target: 2 threads >= 1.7x one\n")

    rows = []
    for module in ["numpy", "nncore"] + (["torch"] if torch else []):
        seconds, rss = import_cost(module)
        rows.append([f"import {module}", f"{seconds * 1e3:.0f}", f"{rss:.0f}"])
    print("Import cost (median of 5 fresh processes)")
    print(table(rows, ["statement", "ms", "max RSS MB"]))

    if cnn is not None:
        rows = [[name, f"{training_peak_rss(name):.0f}"]
                for name in ["nncore"] + (["torch"] if torch else [])]
        print("\nPeak RSS of a process training the MNIST CNN, batch 128, 1024 samples")
        print(table(rows, ["library", "peak RSS MB"]))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
