"""Inference against onnxruntime: the same weights, exported with
nncore.onnx, run by nncore and by onnxruntime (sequential execution, full
graph optimisation) at 1 and 2 threads, each network written in both
spellings (`activation=` and separate ReLU() layers).  Prints medians of
interleaved runs, their spread, the GFLOP/s reached and its share of the
SGEMM peak measured in the same run; and, for the MLP at batch 256 on one
thread, the share of predict's time that its three GEMMs take when called
alone (SciPy's BLAS, the one nncore calls, on the same shapes).
`--clock cpu` times by the CPU time of the calling thread instead of the
wall clock (at 1 thread both libraries compute on the calling thread): on a
machine that other work shares, the time a thread waits for a core then does
not count.

    pip install "nncore[bench]"; python benchmarks/bench_onnxruntime.py
"""
import argparse
import statistics
import time

import numpy as np

import nncore
import nncore.onnx
from _common import SPELLINGS, cnn_layers, gemm_peak, mlp_layers, table

MLP = ("MLP 784-256-128-10", (784,), mlp_layers)
CNN = ("CNN conv32-pool-conv64-pool-128-10", (28, 28, 1), cnn_layers)


def forward_flops(net) -> int:
    """Multiply-adds x 2 of one sample's forward pass (dense and convolution)."""
    total = 0
    for layer in net.layers:
        if isinstance(layer, nncore.Conv2D):
            kh, kw = layer.kernel_size
            oh, ow, f = layer.output_shape
            total += 2 * oh * ow * f * kh * kw * layer.input_shape[-1]
        elif isinstance(layer, nncore.Dense):
            total += 2 * layer.W.size * int(np.prod(layer.input_shape[:-1]))
    return total


def session(path, threads):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


CLOCK = time.perf_counter     # --clock cpu: time.thread_time


def interleaved(runs: dict, calls: int, repeats: int) -> dict:
    """{name: [seconds per call of each repeat]}, the names taking turns.  A
    pause and an untimed call before each turn let the other library's idle
    threads stop spinning (onnxruntime's keep polling for a while after a
    run), so that they do not take a core from the library being timed."""
    times = {name: [] for name in runs}
    for run in runs.values():
        run()
    for _ in range(repeats):
        for name, run in runs.items():
            time.sleep(0.2)
            run()
            start = CLOCK()
            for _ in range(calls):
                run()
            times[name].append((CLOCK() - start) / calls)
    return times


def gemm_share(net, batch: int, repeats: int) -> dict:
    """Seconds of a dense network's predict of `batch` samples on one thread
    and of its GEMMs alone through SciPy's sgemm, written as y^T = W^T x^T so
    that no operand is copied, interleaved:
      "gemm":         the GEMMs on the whole batch at once;
      "gemm chunks":  the GEMMs predict calls: one per layer and chunk (predict
                      splits a batch into chunks whose number is a multiple of
                      the core count, whatever the thread count, so that the
                      results do not depend on it);
      "predict":      InferenceSession.predict with its default chunks;
      "predict one chunk": the same with batch_size=batch."""
    from scipy.linalg.blas import sgemm
    rng = np.random.default_rng(2)
    x = rng.random((batch, net.layers[0].W.shape[0]), np.float32)
    inputs = [x] + [np.empty((batch, layer.W.shape[1]), np.float32)
                    for layer in net.layers if isinstance(layer, nncore.Dense)]
    weights = [layer.W for layer in net.layers if isinstance(layer, nncore.Dense)]
    with nncore.threads(1):
        chunk = net.plans.predict_schedule(net, batch, None)[0]
    pieces = [(start, min(batch, start + chunk)) for start in range(0, batch, chunk)]

    def gemms():
        for W, a, y in zip(weights, inputs, inputs[1:]):
            sgemm(1.0, W.T, a.T, c=y.T, overwrite_c=True)

    def chunked_gemms():
        for start, end in pieces:
            for W, a, y in zip(weights, inputs, inputs[1:]):
                sgemm(1.0, W.T, a[start:end].T, c=y[start:end].T, overwrite_c=True)
    session = nncore.InferenceSession(net)
    whole = nncore.InferenceSession(net, batch_size=batch)
    out = np.empty((batch, 10), np.float32)
    with nncore.threads(1):
        times = interleaved({"gemm": gemms, "gemm chunks": chunked_gemms,
                             "predict": lambda: session.predict(x, out),
                             "predict one chunk": lambda: whole.predict(x, out)},
                            50, repeats)
    result = {k: statistics.median(v) for k, v in times.items()}
    result["chunks"] = len(pieces)
    return result


def spread(values) -> str:
    low, high = min(values), max(values)
    return f"{100 * (high - low) / statistics.median(values):.0f}%"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the calling thread's CPU time (meaningful at 1 thread)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    if args.clock == "cpu" and args.threads != [1]:
        parser.error("--clock cpu times the calling thread only: use it with --threads 1")
    rows = []
    for threads in args.threads:
        peak = gemm_peak(threads)
        for name, shape, layers in (MLP, CNN):
            for spelling in SPELLINGS:
                rows += compare(name, shape, layers, spelling, threads, peak, args.repeats)
        print(f"SGEMM peak at {threads} thread(s): {peak:.0f} GFLOP/s")
    print(table(rows, ["model", "spelling", "threads", "batch", "nncore (us or samples/s)", "spread",
                       "onnxruntime", "spread", "nncore speed / ort", "nncore GFLOP/s",
                       "of SGEMM peak"]))
    print("batch 1: microseconds per call; batch 256: samples per second; ratios > 1 mean "
          "nncore is faster")
    print("GFLOP/s count the multiply-adds of a direct convolution; Winograd's F(2x2, 3x3) "
          "needs fewer, so the CNN's share of the SGEMM peak can pass 100%")
    print("targets at 1 thread: CNN batch 256 >= 1.0x, CNN batch 1 >= 1.0x; "
          "MLP batch 256 >= 1.0x, MLP batch 1 >= 1.25x")
    for spelling in SPELLINGS:
        net = nncore.Network(mlp_layers(spelling), input_shape=(784,), seed=0).build()
        t = gemm_share(net, 256, args.repeats)
        print(f"MLP batch 256, 1 thread, {spelling}: its three GEMMs alone {t['gemm'] * 1e6:.0f} us, "
              f"predict {t['predict'] * 1e6:.0f} us: GEMM share "
              f"{100 * t['gemm'] / t['predict']:.0f}% (target >= 90%); the GEMMs predict "
              f"calls ({t['chunks']} chunks) {t['gemm chunks'] * 1e6:.0f} us: "
              f"{100 * t['gemm chunks'] / t['predict']:.0f}% of predict; predict in one chunk "
              f"{t['predict one chunk'] * 1e6:.0f} us: GEMM share "
              f"{100 * t['gemm'] / t['predict one chunk']:.0f}%")


def compare(name, shape, layers, spelling, threads, peak, repeats) -> list:
    """Table rows of one network in one spelling against onnxruntime."""
    import tempfile
    rows = []
    net = nncore.Network(layers(spelling), input_shape=shape, seed=0).build()
    flops = forward_flops(net)
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/model.onnx"
        nncore.onnx.export(net, path)
        ort = session(path, threads)
    for batch in (1, 256):
        x = np.random.default_rng(1).random((batch,) + shape, np.float32)
        ours = nncore.InferenceSession(net)
        out = np.empty((batch, 10), np.float32)
        with nncore.threads(threads):
            ours.predict(x, out)
            theirs = ort.run(None, {"input": x})[0]
            np.testing.assert_allclose(out, theirs, rtol=1e-4, atol=1e-4)
            calls = 2000 if batch == 1 else (20 if shape == (784,) else 3)
            times = interleaved({"nncore": lambda: ours.predict(x, out),
                                 "onnxruntime": lambda: ort.run(None, {"input": x})},
                                calls, repeats)
        a, b = (statistics.median(times[k]) for k in ("nncore", "onnxruntime"))
        gflops = flops * batch / a / 1e9
        rows.append([name, spelling, threads, batch,
                     f"{a * 1e6:.1f}" if batch == 1 else f"{batch / a:,.0f}",
                     spread(times["nncore"]),
                     f"{b * 1e6:.1f}" if batch == 1 else f"{batch / b:,.0f}",
                     spread(times["onnxruntime"]), f"{b / a:.2f}x",
                     f"{gflops:.1f}", f"{100 * gflops / peak:.0f}%"])
    return rows


if __name__ == "__main__":
    main()
