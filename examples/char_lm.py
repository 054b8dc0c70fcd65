"""A character-level language model on the text of CPython's pydoc_data.topics
(shipped with Python, no download): Embedding -> LSTM -> Dense over the
characters, trained on the first 90% of the text, scored in bits per
character on the last 10%.  With PyTorch installed, the same model, from
the same initial weights (copied across), is trained on the same batches for
the same steps, and both are printed.

    python examples/char_lm.py [--steps 300] [--threads 1]
"""
import argparse
import time

import numpy as np

import nncore

LENGTH, BATCH, EMBED, UNITS, RATE = 64, 32, 32, 128, 2e-3


def corpus():
    """(indices of the characters, alphabet size): the topics in key order."""
    from pydoc_data.topics import topics
    text = "".join(topics[key] for key in sorted(topics))
    alphabet = sorted(set(text))
    lookup = {c: i for i, c in enumerate(alphabet)}
    return np.array([lookup[c] for c in text], np.int64), len(alphabet)


def windows(codes, starts):
    """(inputs, next-character targets), both (len(starts), LENGTH)."""
    index = np.asarray(starts)[:, None] + np.arange(LENGTH)
    return codes[index], codes[index + 1]


def bits_per_character(logits, targets):
    logits = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits).sum(axis=1))
    picked = logits[np.arange(len(logits)), targets.reshape(-1)]
    return float(np.mean(log_norm - picked) / np.log(2))


def model(symbols, seed=0):
    return nncore.Network([nncore.Embedding(symbols, EMBED),
                           nncore.LSTM(UNITS, return_sequences=True),
                           nncore.Dense(symbols)], input_shape=(LENGTH,), seed=seed).build()


def train_nncore(x, y, symbols):
    net = model(symbols)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=nncore.optimizers.Adam(RATE))
    net.fit(x, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    return net.predict


def train_torch(x, y, symbols):
    """The same network in PyTorch, starting from nncore's initial weights
    (LSTM gate blocks are in the same order; PyTorch holds the transposes)."""
    import torch
    table, kernel, recurrent, bias, dense, dense_bias = model(symbols).get_weights()
    embed = torch.nn.Embedding(symbols, EMBED)
    lstm = torch.nn.LSTM(EMBED, UNITS, batch_first=True)
    head = torch.nn.Linear(UNITS, symbols)
    with torch.no_grad():
        for target, value in [(embed.weight, table), (lstm.weight_ih_l0, kernel.T),
                              (lstm.weight_hh_l0, recurrent.T), (lstm.bias_ih_l0, bias),
                              (lstm.bias_hh_l0, 0 * bias), (head.weight, dense.T),
                              (head.bias, dense_bias)]:
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    params = [*embed.parameters(), *lstm.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, RATE)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for start in range(0, len(x), BATCH):
        out, _ = lstm(embed(tx[start:start + BATCH]))
        logits = head(out)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, symbols),
                                                 ty[start:start + BATCH].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def predict(inputs):
        with torch.no_grad():
            out, _ = lstm(embed(torch.from_numpy(inputs)))
            return head(out).numpy()
    return predict


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    codes, symbols = corpus()
    split = int(len(codes) * 0.9)
    rng = np.random.default_rng(0)
    x, y = windows(codes, rng.integers(0, split - LENGTH - 1, size=args.steps * BATCH))
    held_x, held_y = windows(codes, np.arange(split, len(codes) - LENGTH - 1, LENGTH))
    print(f"{len(codes):,} characters, {symbols} symbols; {args.steps} steps of {BATCH} "
          f"windows of {LENGTH}; held out: {len(held_x) * LENGTH:,} characters")
    trainers = {"nncore": train_nncore}
    try:
        import torch
        torch.set_num_threads(args.threads)
        trainers["PyTorch"] = train_torch
    except ImportError:
        pass
    with nncore.threads(args.threads):
        for name, train in trainers.items():
            began = time.perf_counter()
            predict = train(x, y, symbols)
            seconds = time.perf_counter() - began
            bpc = bits_per_character(predict(held_x), held_y)
            print(f"LSTM({UNITS}) {name:8s} held-out {bpc:.3f} bits/char, "
                  f"trained in {seconds:.1f} s")


if __name__ == "__main__":
    main()
