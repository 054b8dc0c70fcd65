"""A character-level language model on the text of CPython's pydoc_data.topics
(shipped with Python, no download), trained on the first 90% of the text,
scored in bits per character on the last 10%: `--model lstm` is Embedding ->
LSTM -> Dense, `--model transformer` a small pre-norm transformer
(Embedding + PositionalEmbedding, 2 blocks of causal self-attention and a
feed-forward layer, each a Residual, then LayerNormalization -> Dense).
With PyTorch installed, the same model, from the same initial weights
(copied across), is trained on the same batches for the same steps, and
both are printed.

    python examples/char_lm.py [--model lstm|transformer] [--steps 300] [--threads 1]
"""
import argparse
import time

import numpy as np

import nncore

LENGTH, BATCH, EMBED, UNITS, RATE = 64, 32, 32, 128, 2e-3
WIDTH, HEADS, BLOCKS, HIDDEN = 128, 4, 2, 256          # the transformer


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


def transformer(symbols, steps=LENGTH, seed=0, width=WIDTH, heads=HEADS, blocks=BLOCKS,
                hidden=HIDDEN):
    """Pre-norm transformer: x + attention(norm(x)), then x + mlp(norm(x)), per block."""
    layers = [nncore.Embedding(symbols, width), nncore.PositionalEmbedding(steps, width)]
    for _ in range(blocks):
        layers += [nncore.Residual(nncore.LayerNormalization(),
                                   nncore.MultiHeadAttention(heads, width // heads,
                                                             causal=True)),
                   nncore.Residual(nncore.LayerNormalization(),
                                   nncore.Dense(hidden, activation="relu"),
                                   nncore.Dense(width))]
    layers += [nncore.LayerNormalization(), nncore.Dense(symbols)]
    return nncore.Network(layers, input_shape=(steps,), seed=seed).build()


def torch_transformer(net):
    """The network `transformer` built, as a PyTorch module holding copies
    of its current weights (attention through scaled_dot_product_attention)."""
    import torch
    F = torch.nn.functional

    class Transformer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in net.get_weights()])
            self.heads = net.layers[2].layers[1].num_heads
            self.epsilon = net.layers[-2].epsilon

        def norm(self, h, it):
            return F.layer_norm(h, h.shape[-1:], next(it), next(it), self.epsilon)

        def forward(self, indices):
            it = iter(self.weights)
            h = F.embedding(indices, next(it)) + next(it)[:indices.shape[1]]
            n, steps, width = h.shape
            for _ in range(len(net.layers[2:-2]) // 2):
                qkv = self.norm(h, it) @ next(it) + next(it)
                q, k, v = qkv.reshape(n, steps, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                h = h + out.transpose(1, 2).reshape(n, steps, width) @ next(it) + next(it)
                hidden = torch.relu(self.norm(h, it) @ next(it) + next(it))
                h = h + hidden @ next(it) + next(it)
            return self.norm(h, it) @ next(it) + next(it)
    return Transformer()


MODELS = {"lstm": model, "transformer": transformer}


def train_nncore(x, y, symbols, kind="lstm"):
    net = MODELS[kind](symbols)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=nncore.optimizers.Adam(RATE))
    net.fit(x, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    return net.predict


def train_torch_transformer(x, y, symbols):
    """The transformer in PyTorch, from nncore's initial weights."""
    import torch
    module = torch_transformer(transformer(symbols))
    optimizer = torch.optim.Adam(module.parameters(), RATE)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for start in range(0, len(x), BATCH):
        logits = module(tx[start:start + BATCH])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, symbols),
                                                 ty[start:start + BATCH].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def predict(inputs):
        with torch.no_grad():
            return module(torch.from_numpy(inputs)).numpy()
    return predict


def train_torch(x, y, symbols, kind="lstm"):
    """The same network in PyTorch, starting from nncore's initial weights
    (LSTM gate blocks are in the same order; PyTorch holds the transposes)."""
    import torch
    if kind == "transformer":
        return train_torch_transformer(x, y, symbols)
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
    parser.add_argument("--model", choices=sorted(MODELS), default="lstm")
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
            predict = train(x, y, symbols, args.model)
            seconds = time.perf_counter() - began
            bpc = bits_per_character(predict(held_x), held_y)
            label = f"LSTM({UNITS})" if args.model == "lstm" else \
                f"transformer({BLOCKS}x{WIDTH}, {HEADS} heads)"
            print(f"{label} {name:8s} held-out {bpc:.3f} bits/char, "
                  f"trained in {seconds:.1f} s")


if __name__ == "__main__":
    main()
