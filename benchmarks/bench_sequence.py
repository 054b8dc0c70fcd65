"""Training and inference throughput of sequence networks: nncore vs
PyTorch (CPU), at 1 and 2 threads.

    python benchmarks/bench_sequence.py [--networks lstm transformer] [--threads 1 2]
                                        [--samples 512] [--repeats 3]

lstm: LSTM(128) over 64 steps of 32 float32 features -> Dense(10) on the
last state, softmax cross-entropy from logits; PyTorch's nn.LSTM with
batch_first, one layer.
transformer: the 2-block pre-norm transformer of examples/char_lm.py (width
128, 4 causal heads, feed-forward 256) over 128 tokens of 103 symbols,
cross-entropy of the next token at every position; PyTorch runs the same
network from the same weights (attention through
scaled_dot_product_attention).
Both: Adam(1e-3), batches of 32, random inputs.  The timed passes of the
two libraries are interleaved, so the load of a shared machine falls on
both alike; figures are medians of `repeats` passes with their range.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "examples"))

STEPS, FEATURES, UNITS, CLASSES, BATCH = 64, 32, 128, 10, 32
TOKENS, SYMBOLS = 128, 103          # the transformer's input


def interleaved(runs, repeats):
    """{name: [seconds, ...]} of callables run in turn (one warm-up each)."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            began = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - began)
    return times


def nncore_runs(x, y):
    import nncore
    net = nncore.Network([nncore.LSTM(UNITS), nncore.Dense(CLASSES)],
                         input_shape=(STEPS, FEATURES), seed=0)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=nncore.optimizers.Adam(1e-3))
    train = lambda: net.fit(x, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    infer = lambda: net.predict(x)
    return train, infer


def torch_runs(x, y):
    import torch
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(FEATURES, UNITS, batch_first=True)
    head = torch.nn.Linear(UNITS, CLASSES)
    optimizer = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), 1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def train():
        for start in range(0, len(x), BATCH):
            out, _ = lstm(tx[start:start + BATCH])
            loss = torch.nn.functional.cross_entropy(head(out[:, -1]), ty[start:start + BATCH])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def infer():
        with torch.no_grad():
            for start in range(0, len(x), 256):
                out, _ = lstm(tx[start:start + 256])
                head(out[:, -1])
    return train, infer


def transformer_data(samples):
    rng = np.random.default_rng(0)
    return rng.integers(0, SYMBOLS, size=(2, samples, TOKENS))


def nncore_transformer_runs(x, y):
    import nncore
    from char_lm import transformer
    net = transformer(SYMBOLS, steps=TOKENS)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=nncore.optimizers.Adam(1e-3))
    x32 = x.astype(np.float32)
    train = lambda: net.fit(x32, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    infer = lambda: net.predict(x32)
    return train, infer


def torch_transformer_runs(x, y):
    import torch
    from char_lm import torch_transformer, transformer
    module = torch_transformer(transformer(SYMBOLS, steps=TOKENS))
    optimizer = torch.optim.Adam(module.parameters(), 1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def train():
        for start in range(0, len(x), BATCH):
            logits = module(tx[start:start + BATCH])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, SYMBOLS),
                                                     ty[start:start + BATCH].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def infer():
        with torch.no_grad():
            for start in range(0, len(x), 256):
                module(tx[start:start + 256])
    return train, infer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--networks", nargs="+", choices=["lstm", "transformer"],
                        default=["lstm", "transformer"])
    args = parser.parse_args()
    for network in args.networks:
        if network == "lstm":
            rng = np.random.default_rng(0)
            x = rng.normal(size=(args.samples, STEPS, FEATURES)).astype(np.float32)
            y = rng.integers(0, CLASSES, size=args.samples)
            ours, theirs = nncore_runs(x, y), torch_runs(x, y)
            title = f"LSTM({UNITS}) over {STEPS} steps of {FEATURES} features"
        else:
            x, y = transformer_data(args.samples)
            ours, theirs = nncore_transformer_runs(x, y), torch_transformer_runs(x, y)
            title = f"transformer (2 blocks, width 128, 4 heads) over {TOKENS} tokens"
        print(f"{title}, batch {BATCH}, {args.samples} samples; samples/s, median "
              f"[min-max] of {args.repeats}")
        measure(ours, theirs, args)


def measure(ours, theirs, args):
    """Print the interleaved rates of nncore's and PyTorch's (train, infer)."""
    from _common import limited_threads
    for threads in args.threads:
        with limited_threads(threads):
            times = interleaved({"nncore train": ours[0], "torch train": theirs[0],
                                 "nncore infer": ours[1], "torch infer": theirs[1]},
                                args.repeats)
        rates = {k: [args.samples / t for t in v] for k, v in times.items()}
        med = {k: statistics.median(v) for k, v in rates.items()}
        for kind in ("train", "infer"):
            a, b = rates[f"nncore {kind}"], rates[f"torch {kind}"]
            print(f"  {threads} thread(s) {kind}: nncore {med['nncore ' + kind]:8.0f} "
                  f"[{min(a):.0f}-{max(a):.0f}]  torch {med['torch ' + kind]:8.0f} "
                  f"[{min(b):.0f}-{max(b):.0f}]  ratio "
                  f"{med['nncore ' + kind] / med['torch ' + kind]:.2f}")


if __name__ == "__main__":
    main()
