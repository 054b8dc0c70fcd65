"""Data-parallel training throughput: training on 1 and 2 threads (the
tables of bench_threads.py), then nncore.dask.fit on a local Dask cluster
against one local thread.

    python benchmarks/bench_parallel.py [--samples 4096] [--repeats 3]
                                        [--section threads|dask|mpi]

Network: the MNIST CNN Conv2D(32,3,relu) -> MaxPool2D(2) -> Conv2D(64,3,relu)
-> MaxPool2D(2) -> Flatten -> Dense(128,relu) -> Dense(10), softmax
cross-entropy from logits, plain SGD, float32, random 28x28x1 inputs.

dask_section(): `nncore.dask.fit` in sync mode on LocalCluster(n_workers=2,
threads_per_worker=1) (rows persisted on the workers before timing; a timed
pass is one epoch, set-up of the fit included) against `Network.fit` on one
nncore thread in this process, at global batches 512 and 2048.  The passes
of the two are interleaved so that the load of a shared machine falls on
both alike; figures are medians of `repeats` passes with their ranges.

mpi_section(): `nncore.mpi.fit` in `mpiexec -n 2` (one thread per rank, each
rank holding half the rows; a pass is one epoch timed inside the job after
a warm-up epoch, so the job's start is not counted) against `Network.fit`
on one thread in this process, passes interleaved, same batches.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import SPELLINGS, cnn_layers  # noqa: E402

BATCHES = (512, 2048)


def cnn(seed=0):
    import nncore
    net = nncore.Network(cnn_layers(SPELLINGS[0]), input_shape=(28, 28, 1), seed=seed)
    return net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                   optimizer=nncore.optimizers.SGD(0.01)).build()


def mnist_shaped(samples, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((samples, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, samples)
    return x, y


def interleaved(runs, repeats):
    """{name: [seconds, ...]}: one warm-up each, then the runs in turn."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            began = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - began)
    return times


def rate_text(samples, seconds):
    rates = sorted(samples / s for s in seconds)
    return f"{np.median(rates):8.0f} ({rates[0]:.0f}-{rates[-1]:.0f})"


def dask_section(samples=4096, repeats=3):
    """Print samples/s of nncore.dask.fit (sync, 2 workers x 1 thread) and
    of one local thread, and their ratio, for the CNN at global batches of
    512 and 2048."""
    import dask.array as da
    from distributed import Client, LocalCluster

    import nncore
    import nncore.dask

    x, y = mnist_shaped(samples)
    print(f"nncore.dask.fit sync mode, LocalCluster(n_workers=2, threads_per_worker=1), "
          f"vs Network.fit on 1 thread; CNN float32 SGD, {samples} samples per pass; "
          f"samples/s median of {repeats} (range); shared machine")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        half = -(-samples // 2)
        xd = da.from_array(x, chunks=(half, 28, 28, 1)).persist()
        yd = da.from_array(y, chunks=(half,)).persist()
        print(f"{'batch':>6} {'1 thread':>22} {'dask 2 workers':>22} {'ratio':>6}")
        profiles = []
        for batch in BATCHES:
            local, spread = cnn(), cnn()

            def one_thread():
                with nncore.threads(1):
                    local.fit(x, y, epochs=1, batch_size=batch, verbose=0)

            def on_cluster():
                nncore.dask.fit(spread, xd, yd, epochs=1, batch_size=batch, client=client,
                                verbose=0)

            times = interleaved({"local": one_thread, "dask": on_cluster}, repeats)
            ratio = np.median(times["local"]) / np.median(times["dask"])
            ratios = sorted(a / b for a, b in zip(times["local"], times["dask"]))
            print(f"{batch:>6} {rate_text(samples, times['local']):>22} "
                  f"{rate_text(samples, times['dask']):>22} {ratio:5.2f}x "
                  f"(per-pass ratios {ratios[0]:.2f}-{ratios[-1]:.2f})")
            profiles.append((batch, step_profile(client, on_cluster, samples // batch),
                             np.median(times["local"]) / (samples // batch)))
        print("where a step's time goes (one more pass):")
        for batch, (wall, compute), local_step in profiles:
            print(f"{batch:>6}: step {wall * 1e3:6.0f} ms on the cluster = worker compute "
                  f"{compute * 1e3:5.0f} ms (slower worker, median) + exchange and Dask "
                  f"{(wall - compute) * 1e3:5.0f} ms; one local thread: {local_step * 1e3:5.0f} "
                  f"ms per step")


def mpi_rank_pass(samples, batch):
    """Run inside `mpiexec`: one warm-up epoch of nncore.mpi.fit on this
    rank's half of the rows, then one timed; rank 0 prints the seconds."""
    from mpi4py import MPI

    import nncore.mpi
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    x, y = mnist_shaped(samples)
    mine = slice(rank * samples // size, (rank + 1) * samples // size)
    net = cnn()
    nncore.mpi.fit(net, x[mine], y[mine], epochs=1, batch_size=batch, verbose=0,
                   threads_per_rank=1)
    comm.Barrier()
    began = time.perf_counter()
    nncore.mpi.fit(net, x[mine], y[mine], epochs=1, batch_size=batch, verbose=0,
                   threads_per_rank=1)
    seconds = comm.allreduce(time.perf_counter() - began, op=MPI.MAX)
    if rank == 0:
        print(f"seconds {seconds}")


def mpi_section(samples=4096, repeats=3, ranks=2):
    """Print samples/s of nncore.mpi.fit on `ranks` ranks (1 thread each)
    and of one local thread, and their ratio, for the CNN at global batches
    of 512 and 2048."""
    import shutil
    import subprocess

    import nncore
    mpiexec = next((str(p) for p in [Path(sys.executable).with_name("mpiexec")]
                    if p.exists()), shutil.which("mpiexec"))
    if mpiexec is None:
        print("mpi section skipped: no mpiexec (pip install 'nncore[mpi]')")
        return
    x, y = mnist_shaped(samples)
    print(f"nncore.mpi.fit, mpiexec -n {ranks} (1 thread per rank), vs Network.fit on 1 "
          f"thread; CNN float32 SGD, {samples} samples per pass; samples/s median of "
          f"{repeats} (range)")
    print(f"{'batch':>6} {'1 thread':>22} {f'mpi {ranks} ranks':>22} {'ratio':>6}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + sys.path))
    for batch in BATCHES:
        local = cnn()

        def one_thread():
            with nncore.threads(1):
                local.fit(x, y, epochs=1, batch_size=batch, verbose=0)
            return None

        def in_mpi():
            done = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, __file__,
                                   "--mpi-rank", "--samples", str(samples), "--batch",
                                   str(batch)], env=env, capture_output=True, text=True,
                                  check=True)
            return float(done.stdout.split("seconds")[-1])

        one_thread()
        times = {"local": [], "mpi": []}
        for _ in range(repeats):
            began = time.perf_counter()
            one_thread()
            times["local"].append(time.perf_counter() - began)
            times["mpi"].append(in_mpi())
        ratio = np.median(times["local"]) / np.median(times["mpi"])
        ratios = sorted(a / b for a, b in zip(times["local"], times["mpi"]))
        print(f"{batch:>6} {rate_text(samples, times['local']):>22} "
              f"{rate_text(samples, times['mpi']):>22} {ratio:5.2f}x "
              f"(per-pass ratios {ratios[0]:.2f}-{ratios[-1]:.2f})")


def step_profile(client, run, steps):
    """(wall seconds per step, seconds of the slower worker's gradient per
    step, median over the steps) of one pass of `run`."""
    from nncore import _dask_replica

    def taken():
        return list(_dask_replica.partial_seconds)

    def clear():        # runs on each worker, on the worker's own record
        _dask_replica.partial_seconds.clear()
    client.run(clear)
    began = time.perf_counter()
    run()
    wall = (time.perf_counter() - began) / steps
    per_worker = [seconds for seconds in client.run(taken).values() if seconds]
    slower = [max(pair) for pair in zip(*per_worker)]     # a step's gradients run together
    return wall, float(np.median(slower)) if slower else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--section", choices=["threads", "dask", "mpi"])
    parser.add_argument("--mpi-rank", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=512, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mpi_rank:
        mpi_rank_pass(args.samples, args.batch)
        return
    if args.section in (None, "threads"):
        import bench_threads
        bench_threads.report(repeats=args.repeats)
    if args.section in (None, "dask"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        dask_section(args.samples, args.repeats)
    if args.section in (None, "mpi"):
        mpi_section(args.samples, args.repeats)


if __name__ == "__main__":
    main()
