"""The worth of nncore's SIMD builds on the machine that runs this: CNN and
MLP training and inference, 1 thread, at each NNCORE_SIMD level this CPU and
this build offer (avx2 where the CPU has AVX2 and FMA, and baseline).

Every level runs in a process of its own (NNCORE_SIMD is read once, at
import); the levels take turns, `--rounds` times, and the table gives the
median of the rounds with their range.  Each process times every workload as
the median of `--repeats` runs, by wall clock and by the CPU time of the
process, which depends much less on what else the machine runs.  Both
spellings of each network (`activation=` and separate ReLU() layers) are
timed.

    python benchmarks/bench_simd.py [--rounds 3] [--repeats 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (name, network, batch, what): the workloads every level runs
WORKLOADS = [
    ("CNN training, batch 32", "cnn", 32, "fit"),
    ("CNN training, batch 128", "cnn", 128, "fit"),
    ("CNN inference, batch 256", "cnn", 256, "predict"),
    ("CNN inference, 1 sample", "cnn", 1, "predict"),
    ("MLP 784-256-128-10 training (Adam), batch 128", "mlp", 128, "fit"),
    ("MLP inference, batch 256", "mlp", 256, "predict"),
    ("MLP inference, 1 sample", "mlp", 1, "predict"),
]


def measure(repeats: int) -> dict:
    """In the child process: {workload | spelling: (wall, cpu) samples per second}."""
    import numpy as np

    import nncore
    from _common import SPELLINGS, cnn_layers, mlp_layers
    rng = np.random.default_rng(0)
    results = {"level": nncore.simd_level()}
    for name, kind, batch, what in WORKLOADS:
        shape = (28, 28, 1) if kind == "cnn" else (784,)
        for spelling in SPELLINGS:
            layers = cnn_layers(spelling) if kind == "cnn" else mlp_layers(spelling)
            net = nncore.Network(layers, input_shape=shape, seed=0).build()
            if what == "fit":
                n = 1024 if kind == "cnn" else 8192
                x = rng.random((n,) + shape, np.float32)
                y = rng.integers(0, 10, n)
                net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                        optimizer="sgd" if kind == "cnn" else "adam")

                def run():
                    net.fit(x, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
                items = n
            else:
                session = nncore.InferenceSession(net)
                x = rng.random((batch,) + shape, np.float32)
                out = np.empty((batch, 10), np.float32)
                calls = 2000 if batch == 1 else (40 if kind == "mlp" else 4)

                def run():
                    for _ in range(calls):
                        session.predict(x, out)
                items = batch * calls
            with nncore.threads(1):
                run()
                walls, cpus = [], []
                for _ in range(repeats):
                    wall, cpu = time.perf_counter(), time.process_time()
                    run()
                    walls.append(items / (time.perf_counter() - wall))
                    cpus.append(items / (time.process_time() - cpu))
            results[f"{name} | {spelling}"] = (statistics.median(walls),
                                               statistics.median(cpus))
    return results


def levels() -> list:
    """The SIMD levels this CPU and this build offer, widest first."""
    code = ("import json, nncore._native as n; "
            "print(json.dumps([l for l in n._simd_levels() if l == 'baseline' or n._builds(l)]))")
    return json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                     capture_output=True, text=True).stdout)


def child(level: str, repeats: int) -> dict:
    env = dict(os.environ, NNCORE_SIMD=level, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                          "--repeats", str(repeats)], check=True, capture_output=True,
                         text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(HERE))
        print(json.dumps(measure(args.repeats)))
        return
    sys.path.insert(0, str(HERE))
    from _common import table
    found = levels()
    print(f"SIMD levels on this machine: {', '.join(found)}; load average before: "
          f"{open('/proc/loadavg').read().split()[:3] if os.path.exists('/proc/loadavg') else '?'}")
    runs = {level: [] for level in found}
    for _ in range(args.rounds):
        for level in found:
            result = child(level, args.repeats)
            if result.pop("level") != level:
                raise SystemExit(f"NNCORE_SIMD={level} did not load the {level} build")
            runs[level].append(result)
    rows = []
    for key in runs[found[0]][0]:
        row = [key]
        medians = []
        for level in found:
            walls = [r[key][0] for r in runs[level]]
            cpus = [r[key][1] for r in runs[level]]
            medians.append(statistics.median(cpus))
            row += [f"{statistics.median(walls):,.0f} ({min(walls):,.0f}-{max(walls):,.0f})",
                    f"{statistics.median(cpus):,.0f}"]
        if len(found) > 1:
            row.append(f"{medians[0] / medians[-1]:.2f}x")
        rows.append(row)
    headers = ["workload | spelling"]
    for level in found:
        headers += [f"{level}: samples/s, wall (range)", f"{level}: per CPU second"]
    if len(found) > 1:
        headers.append(f"{found[0]} / {found[-1]} (CPU)")
    print(table(rows, headers))
    print(f"1 thread; medians of {args.rounds} rounds (levels interleaved), each the median "
          f"of {args.repeats} runs; load average after: "
          f"{open('/proc/loadavg').read().split()[:3] if os.path.exists('/proc/loadavg') else '?'}")


if __name__ == "__main__":
    main()
