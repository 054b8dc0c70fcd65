"""MultiHeadAttention, PositionalEmbedding and Residual: against PyTorch in
float64 (weights copied across, forward and backward to 1e-12 relative),
by finite differences, float32 against float64, in networks (a pre-norm
transformer against the same network in PyTorch), saving, copying, ONNX."""
import pickle

import numpy as np
import pytest

import nncore
from reference import numeric_gradient, relative_error
from test_kernels import build

torch = pytest.importorskip("torch")
F = torch.nn.functional
EXACT = 1e-12


def randomize(layers, rng, scale=0.5):
    for layer in layers:
        for p in layer.params:
            p[...] = rng.normal(size=p.shape) * scale


def torch_attention(layer, x, qkv_kernel, qkv_bias, out_kernel, out_bias):
    """MultiHeadAttention by hand in torch (any num_heads * key_dim)."""
    n, steps, _ = x.shape
    heads, size = layer.num_heads, layer.key_dim
    qkv = (x @ qkv_kernel + qkv_bias).reshape(n, steps, 3, heads, size).permute(2, 0, 3, 1, 4)
    scores = qkv[0] @ qkv[1].transpose(-1, -2) / np.sqrt(size)
    if layer.causal:
        future = torch.triu(torch.ones(steps, steps, dtype=torch.bool), 1)
        scores = scores.masked_fill(future, float("-inf"))
    out = (torch.softmax(scores, -1) @ qkv[2]).transpose(1, 2).reshape(n, steps, heads * size)
    return out @ out_kernel + out_bias


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_torch_multihead_attention(causal):
    rng = np.random.default_rng(0)
    steps, features, heads = 7, 6, 3
    layer = build(nncore.MultiHeadAttention(heads, features // heads, causal=causal),
                  (steps, features), np.float64)
    randomize([layer], rng)
    x, dy = rng.normal(size=(4, steps, features)), rng.normal(size=(4, steps, features))
    y = layer.forward(x)
    dx = layer.backward(dy)
    module = torch.nn.MultiheadAttention(features, heads, batch_first=True,
                                         dtype=torch.float64)
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.tensor(layer.qkv_kernel.T))
        module.in_proj_bias.copy_(torch.tensor(layer.qkv_bias))
        module.out_proj.weight.copy_(torch.tensor(layer.output_kernel.T))
        module.out_proj.bias.copy_(torch.tensor(layer.output_bias))
    tx = torch.tensor(x, requires_grad=True)
    mask = torch.triu(torch.ones(steps, steps, dtype=torch.bool), 1) if causal else None
    ty, _ = module(tx, tx, tx, attn_mask=mask, need_weights=False)
    ty.backward(torch.tensor(dy))
    theirs = [ty.detach().numpy(), tx.grad.numpy(), module.in_proj_weight.grad.numpy().T,
              module.in_proj_bias.grad.numpy(), module.out_proj.weight.grad.numpy().T,
              module.out_proj.bias.grad.numpy()]
    for ours, reference in zip([y, dx] + layer.grads, theirs):
        assert relative_error(ours, reference) < EXACT


@pytest.mark.parametrize("heads,size,causal", [(2, 5, True), (1, 3, False), (4, 2, True)])
def test_attention_with_any_head_size_matches_torch(heads, size, causal):
    rng = np.random.default_rng(1)
    layer = build(nncore.MultiHeadAttention(heads, size, causal=causal), (6, 4), np.float64)
    randomize([layer], rng)
    x, dy = rng.normal(size=(3, 6, 4)), rng.normal(size=(3, 6, 4))
    y = layer.forward(x)
    dx = layer.backward(dy)
    assert_matches_torch(layer, x, dy, y, dx)


def assert_matches_torch(layer, x, dy, y, dx):
    """y, dx and the layer's gradients equal PyTorch's for input x and
    output gradient dy."""
    tx = torch.tensor(x, requires_grad=True)
    tp = [torch.tensor(p, requires_grad=True) for p in layer.params]
    ty = torch_attention(layer, tx, *tp)
    ty.backward(torch.tensor(dy))
    for ours, reference in zip([y, dx] + layer.grads,
                               [ty.detach().numpy(), tx.grad.numpy()] +
                               [p.grad.numpy() for p in tp]):
        assert relative_error(ours, reference) < EXACT


@pytest.mark.parametrize("block_rows,steps", [(4, 11), (3, 9), (1, 5), (64, 130)])
def test_causal_attention_in_blocks_of_query_rows_matches_torch(block_rows, steps):
    """Causal attention runs its products in blocks of query rows (the last
    one partial); any block size gives PyTorch's result."""
    from nncore._native import attention
    rng = np.random.default_rng(11)
    previous = attention.set_block_rows(block_rows)
    try:
        layer = build(nncore.MultiHeadAttention(2, 3, causal=True), (steps, 5), np.float64)
        randomize([layer], rng)
        x, dy = rng.normal(size=(3, steps, 5)), rng.normal(size=(3, steps, 5))
        y = layer.forward(x)
        dx = layer.backward(dy)
    finally:
        attention.set_block_rows(previous)
    assert_matches_torch(layer, x, dy, y, dx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_inference_forward_equals_training_forward(dtype):
    """Inference keeps no attention weights (one scratch reused); its output
    is the training forward's bit for bit, and a backward after it (which
    recomputes the weights) equals the backward after a training forward."""
    rng = np.random.default_rng(12)
    layer = build(nncore.MultiHeadAttention(2, 3, causal=True), (70, 5), dtype)
    randomize([layer], rng)
    x, dy = rng.normal(size=(3, 70, 5)).astype(dtype), rng.normal(size=(3, 70, 5)).astype(dtype)
    trained = layer.forward(x, training=True).copy()
    dx_trained = layer.backward(dy).copy()
    grads_trained = [g.copy() for g in layer.grads]
    np.testing.assert_array_equal(layer.forward(x), trained)
    np.testing.assert_array_equal(layer.backward(dy), dx_trained)
    for g, reference in zip(layer.grads, grads_trained):
        np.testing.assert_array_equal(g, reference)


def test_attention_without_bias_and_finite_differences():
    rng = np.random.default_rng(2)
    layer = build(nncore.MultiHeadAttention(2, 3, causal=True, use_bias=False), (5, 4),
                  np.float64)
    randomize([layer], rng)
    assert len(layer.params) == 2
    x, weights = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 4))
    layer.forward(x)
    dx = layer.backward(weights)
    grads = [g.copy() for g in layer.grads]
    f = lambda: float(np.sum(layer.forward(x) * weights))
    assert relative_error(dx, numeric_gradient(f, x)) < 1e-7
    for p, g in zip(layer.params, grads):
        assert relative_error(g, numeric_gradient(f, p)) < 1e-7


def test_attention_float32_matches_float64():
    rng = np.random.default_rng(3)
    double = build(nncore.MultiHeadAttention(2, 4, causal=True), (9, 8), np.float64)
    single = build(nncore.MultiHeadAttention(2, 4, causal=True), (9, 8), np.float32)
    randomize([double], rng)
    single.set_weights(double.get_weights())
    x, dy = rng.normal(size=(3, 9, 8)), rng.normal(size=(3, 9, 8))
    np.testing.assert_allclose(single.forward(x.astype(np.float32)), double.forward(x),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(single.backward(dy.astype(np.float32)), double.backward(dy),
                               rtol=1e-4, atol=1e-4)
    for a, b in zip(single.grads, double.grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_causal_attention_output_ignores_the_future():
    rng = np.random.default_rng(4)
    layer = build(nncore.MultiHeadAttention(2, 3, causal=True), (8, 5), np.float64)
    x = rng.normal(size=(2, 8, 5))
    changed = x.copy()
    changed[:, 5:] = rng.normal(size=(2, 3, 5)) * 100
    a, b = layer.forward(x), layer.forward(changed)
    np.testing.assert_array_equal(a[:, :5], b[:, :5])
    assert not np.allclose(a[:, 5:], b[:, 5:])


def test_attention_errors_name_the_layer():
    with pytest.raises(ValueError, match="MultiHeadAttention: num_heads"):
        nncore.MultiHeadAttention(0, 4)
    with pytest.raises(TypeError, match="MultiHeadAttention: causal"):
        nncore.MultiHeadAttention(2, 4, causal="yes")
    with pytest.raises(ValueError, match=r"layer 0 \(MultiHeadAttention\).*steps, features"):
        nncore.Network([nncore.MultiHeadAttention(2, 4)], input_shape=(6,)).build()


# ----------------------------------------------------------- positional embedding
def test_positional_embedding_matches_torch_and_leaves_unused_rows_alone():
    rng = np.random.default_rng(5)
    layer = build(nncore.PositionalEmbedding(10, 3), (6, 3), np.float64)
    x, dy = rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 6, 3))
    y = layer.forward(x)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    table = torch.tensor(layer.embeddings, requires_grad=True)
    ty = tx + table[:6]
    ty.backward(torch.tensor(dy))
    for ours, reference in zip([y, dx, layer.grads[0]],
                               [ty.detach().numpy(), tx.grad.numpy(), table.grad.numpy()]):
        assert relative_error(ours, reference) < EXACT
    assert not layer.grads[0][6:].any()
    single = build(nncore.PositionalEmbedding(10, 3), (6, 3), np.float32)
    single.set_weights(layer.get_weights())
    np.testing.assert_allclose(single.forward(x.astype(np.float32)), y, rtol=1e-6, atol=1e-6)


def test_positional_embedding_finite_differences():
    rng = np.random.default_rng(13)
    layer = build(nncore.PositionalEmbedding(7, 2), (5, 2), np.float64)
    x, weights = rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 5, 2))
    f = lambda: float(np.sum(np.tanh(layer.forward(x)) * weights))
    dx = layer.backward(weights * (1 - np.tanh(layer.forward(x)) ** 2))
    grad = layer.grads[0].copy()
    assert relative_error(dx, numeric_gradient(f, x)) < 1e-7
    assert relative_error(grad, numeric_gradient(f, layer.embeddings)) < 1e-7


def test_positional_embedding_refuses_other_shapes():
    with pytest.raises(ValueError, match=r"layer 1 \(PositionalEmbedding\).*steps <= 4, 3"):
        nncore.Network([nncore.Embedding(5, 3), nncore.PositionalEmbedding(4, 3)],
                       input_shape=(6,)).build()
    with pytest.raises(ValueError, match=r"PositionalEmbedding\).*steps <= 8, 2"):
        nncore.Network([nncore.Embedding(5, 3), nncore.PositionalEmbedding(8, 2)],
                       input_shape=(6,)).build()


# ------------------------------------------------------------------- Residual
def transformer(vocabulary=7, steps=6, width=8, heads=2, blocks=2, seed=0, dtype="float64"):
    layers = [nncore.Embedding(vocabulary, width), nncore.PositionalEmbedding(steps, width)]
    for _ in range(blocks):
        layers += [nncore.Residual(nncore.LayerNormalization(),
                                   nncore.MultiHeadAttention(heads, width // heads,
                                                             causal=True)),
                   nncore.Residual(nncore.LayerNormalization(),
                                   nncore.Dense(2 * width, activation="relu"),
                                   nncore.Dense(width))]
    layers += [nncore.LayerNormalization(), nncore.Dense(vocabulary)]
    net = nncore.Network(layers, input_shape=(steps,), dtype=dtype, seed=seed).build()
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=nncore.optimizers.Adam(1e-3))
    return net


def torch_transformer(net, x, params):
    """The network `transformer` builds, in torch, over tensors of its params."""
    it = iter(params)
    h = F.embedding(x, next(it)) + next(it)[:x.shape[1]]
    for layer in net.layers[2:-2]:
        inner = layer.layers
        a = F.layer_norm(h, h.shape[-1:], next(it), next(it), inner[0].epsilon)
        if isinstance(inner[1], nncore.MultiHeadAttention):
            h = h + torch_attention(inner[1], a, next(it), next(it), next(it), next(it))
        else:
            hidden = torch.relu(a @ next(it) + next(it))
            h = h + hidden @ next(it) + next(it)
    h = F.layer_norm(h, h.shape[-1:], next(it), next(it), net.layers[-2].epsilon)
    return h @ next(it) + next(it)


def test_transformer_network_gradients_match_torch():
    rng = np.random.default_rng(6)
    net = transformer()
    randomize(net.layers[2:], rng, 0.4)
    x = rng.integers(0, 7, size=(5, 6))
    y = rng.integers(0, 7, size=(5, 6))
    ours = net.gradients(x, y)
    logits = net.predict(x)
    tp = [torch.tensor(p, requires_grad=True) for p in net.params]
    out = torch_transformer(net, torch.tensor(x), tp)
    loss = F.cross_entropy(out.reshape(-1, 7), torch.tensor(y).reshape(-1))
    loss.backward()
    assert relative_error(logits, out.detach().numpy()) < EXACT
    assert len(ours) == len(tp)
    for g, p in zip(ours, tp):
        assert relative_error(g, p.grad.numpy()) < EXACT


def test_residual_finite_differences_nested_and_with_a_python_layer():
    class Scale(nncore.Layer):          # a layer written in Python
        def forward(self, x, training=False):
            return 0.5 * x

        def backward(self, dy):
            return 0.5 * dy

    rng = np.random.default_rng(7)

    def network(middle):
        return nncore.Network([
            nncore.Dense(4, activation="tanh"),
            nncore.Residual(nncore.Dense(4, activation="tanh"),
                            nncore.Residual(nncore.LayerNormalization(), middle),
                            nncore.Dense(4)),
            nncore.Dense(2)], input_shape=(3,), dtype="float64", seed=1).build().use("mse")

    native, python = network(nncore.Dense(4)), network(Scale())
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    for net in (native, python):
        randomize(net.layers, rng)
        grads = net.gradients(x, y)
        loss = lambda: float(np.mean((net.predict(x) - y) ** 2))
        for p, g in zip(net.params, grads):
            assert relative_error(g, numeric_gradient(loss, p)) < 1e-7
    # the Python path (a Python layer inside) computes what the plan computes
    twin = network(Scale())
    twin.layers[1].layers[1].layers[1] = nncore.Dense(4)      # same structure, native
    assert python.predict(x).shape == (6, 2)
    first = native.layers[1]
    out = first.forward(native.layers[0].forward(x))
    manual = native.layers[0].forward(x)
    inner = manual
    for layer in first.layers:
        inner = layer.forward(inner)
    np.testing.assert_allclose(out, manual + inner, rtol=1e-14)


def test_residual_python_path_matches_the_plan():
    class Identity(nncore.Layer):
        def forward(self, x, training=False):
            return x

        def backward(self, dy):
            return dy

    rng = np.random.default_rng(8)
    layers = lambda extra: [nncore.Residual(nncore.LayerNormalization(),
                                            nncore.MultiHeadAttention(2, 2), *extra)]
    native = nncore.Network(layers([]), input_shape=(5, 4), dtype="float64",
                            seed=0).build().use("mse")
    python = nncore.Network(layers([Identity()]), input_shape=(5, 4), dtype="float64",
                            seed=0).build().use("mse")
    randomize(native.layers, rng)
    python.set_weights(native.get_weights())
    x, y = rng.normal(size=(3, 5, 4)), rng.normal(size=(3, 5, 4))
    np.testing.assert_allclose(python.predict(x), native.predict(x), rtol=1e-12, atol=1e-14)
    for a, b in zip(python.gradients(x, y), native.gradients(x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_residual_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="at least one layer"):
        nncore.Residual()
    with pytest.raises(TypeError, match="argument 1 must be an nncore Layer"):
        nncore.Residual(nncore.Dense(3), "relu")
    dense = nncore.Dense(3)
    with pytest.raises(TypeError, match="appears twice"):
        nncore.Residual(dense, dense)
    with pytest.raises(ValueError, match="Embedding.*first layer"):
        nncore.Residual(nncore.Embedding(4, 3))
    with pytest.raises(ValueError, match=r"layer 1 \(Residual\).*\(5,\) into \(3,\)"):
        nncore.Network([nncore.Dense(5), nncore.Residual(nncore.Dense(3))],
                       input_shape=(2,)).build()
    with pytest.raises(ValueError, match=r"layer 0 \(Residual\): layer 1 "
                                         r"\(MultiHeadAttention\): .*steps, features"):
        nncore.Network([nncore.Residual(nncore.Dense(5), nncore.MultiHeadAttention(1, 2))],
                       input_shape=(5,)).build()


def test_transformer_saves_loads_and_copies(tmp_path):
    rng = np.random.default_rng(9)
    net = transformer(dtype="float32")
    randomize(net.layers[1:], rng, 0.3)
    x = rng.integers(0, 7, size=(4, 6)).astype(np.float32)
    expected = net.predict(x)
    net.save(tmp_path / "model.nnc")
    for other in (nncore.load(tmp_path / "model.nnc"), net.copy(),
                  pickle.loads(pickle.dumps(net))):
        np.testing.assert_array_equal(other.predict(x), expected)
        assert [type(l).__name__ for l in other.layers] == \
            [type(l).__name__ for l in net.layers]
        assert other.layers[2].layers[1].causal
    copy = net.copy()
    copy.fit(x, rng.integers(0, 7, size=(4, 6)), epochs=1, batch_size=4, verbose=0)
    np.testing.assert_array_equal(net.predict(x), expected)     # the copy owns its weights


def test_residual_keeps_batch_normalization_state_and_loads_it(tmp_path):
    net = nncore.Network([nncore.Dense(4),
                          nncore.Residual(nncore.Dense(4), nncore.BatchNormalization())],
                         input_shape=(3,), seed=0).build().use("mse")
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(32, 3)).astype(np.float32), rng.normal(size=(32, 4))
    net.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert len(net.layers[1].state) == 2 and net.layers[1].state[0].any()
    net.save(tmp_path / "bn.nnc")
    np.testing.assert_array_equal(nncore.load(tmp_path / "bn.nnc").predict(x), net.predict(x))


def test_hostile_nesting_is_refused():
    from nncore import saving
    from nncore.errors import ModelFormatError
    entry = {"class": "Dense", "config": {"units": 2}}
    for _ in range(40):
        entry = {"class": "Residual", "config": {"layers": [entry]}}
    config = {"dtype": "float32", "input_shape": [2], "seed": 0, "layers": [entry],
              "loss": None, "optimizer": None}
    with pytest.raises(ModelFormatError, match="nest more than 32"):
        saving.network_from_config(config, nncore.Network)


def test_plan_summary_shows_the_residual_steps():
    text = transformer().summary(print_fn=lambda s: None, plan=True)
    assert "residual: layer_normalization; multi_head_attention" in text
    assert "residual: layer_normalization; dense, GEMM, epilogue bias + relu" in text


def test_attention_learns_to_copy_the_first_token():
    """Every position must output the sequence's first token: only a layer
    that mixes positions (attention) can."""
    rng = np.random.default_rng(11)
    x = rng.integers(0, 5, size=(2048, 8))
    y = np.repeat(x[:, :1], 8, axis=1)
    net = nncore.Network([nncore.Embedding(5, 16), nncore.PositionalEmbedding(8, 16),
                          nncore.Residual(nncore.MultiHeadAttention(2, 8)),
                          nncore.Dense(5)], input_shape=(8,), seed=0)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=nncore.optimizers.Adam(1e-2))
    net.fit(x[:1536], y[:1536], epochs=8, batch_size=32, verbose=0)
    accuracy = np.mean(net.predict(x[1536:]).argmax(-1) == y[1536:])
    assert accuracy > 0.95


def test_a_layer_inside_a_block_cannot_sit_elsewhere_too():
    dense = nncore.Dense(3)
    with pytest.raises(ValueError, match="Dense object is already inside layer 1"):
        nncore.Network([nncore.Dense(3), nncore.Residual(dense), dense], input_shape=(3,))
    with pytest.raises(ValueError, match="Dense object is already layer 0"):
        nncore.Network([dense, nncore.Residual(dense)], input_shape=(3,))
    other = nncore.Network([nncore.Residual(nncore.Dense(3), dense)], input_shape=(3,))
    with pytest.raises(ValueError, match="Dense object already belongs to another network"):
        nncore.Network([nncore.Residual(dense)], input_shape=(3,))
    assert other.predict(np.ones((1, 3), np.float32)).shape == (1, 3)


def test_a_block_that_fails_to_build_leaves_its_layers_unbuilt():
    inner = nncore.Dense(5)
    block = nncore.Residual(inner)
    net = nncore.Network([nncore.Dense(3)], input_shape=(2,))
    with pytest.raises(ValueError, match=r"layer 1 \(Residual\)"):
        net.add(block)
    assert not inner.built and inner._network is None and len(net.layers) == 1
    nncore.Network([nncore.Dense(5), block], input_shape=(2,))     # usable elsewhere


def test_sharded_training_of_blocks_equals_one_shard_and_ignores_threads(monkeypatch):
    """A batch in shards (each with its own op records: the two ops of a
    block pair within each shard's records), a whole-batch
    BatchNormalization inside a block between them."""
    from nncore import _plans
    rng = np.random.default_rng(12)
    x = rng.integers(0, 7, size=(128, 6))
    y = rng.integers(0, 7, size=(128, 6))

    def trained(shards, threads, dtype="float64"):
        monkeypatch.setattr(_plans, "TRAINING_SHARDS", shards)
        monkeypatch.setattr(_plans, "SHARD_WORK", 0)       # small layers: shards of 16
        net = nncore.Network([
            nncore.Embedding(7, 8), nncore.PositionalEmbedding(6, 8),
            nncore.Residual(nncore.LayerNormalization(),
                            nncore.MultiHeadAttention(2, 4, causal=True)),
            nncore.Residual(nncore.Dense(16, activation="relu"), nncore.Dense(8),
                            nncore.BatchNormalization()),
            nncore.Dense(7)], input_shape=(6,), dtype=dtype, seed=4)
        net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                optimizer=nncore.optimizers.Adam(1e-2))
        with nncore.threads(threads):
            net.fit(x, y, epochs=2, batch_size=64, verbose=0, shuffle=False)
        return net

    whole, sharded = trained(1, 1), trained(4, 2)
    assert sharded.plans._train_plan.shard_count(64) == 4
    for a, b in zip(whole.get_weights(), sharded.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-10)    # weights are O(1)
    assert any(not np.array_equal(a, b) for a, b in zip(whole.get_weights(),
                                                          sharded.get_weights()))
    one, two = trained(4, 1, "float32"), trained(4, 2, "float32")
    for a, b in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_training_with_causal_blocks_ignores_threads(monkeypatch):
    """Causal attention in several blocks of query rows, trained in 4 shards
    on 1 and on 2 threads: the same bits."""
    from nncore import _plans
    from nncore._native import attention
    rng = np.random.default_rng(14)
    x = rng.integers(0, 7, size=(128, 10))
    y = rng.integers(0, 7, size=(128, 10))
    monkeypatch.setattr(_plans, "TRAINING_SHARDS", 4)
    monkeypatch.setattr(_plans, "SHARD_WORK", 0)

    def trained(threads):
        net = transformer(steps=10, dtype="float32", seed=6)
        with nncore.threads(threads):
            net.fit(x, y, epochs=2, batch_size=64, verbose=0, shuffle=False)
        return net

    previous = attention.set_block_rows(4)
    try:
        one, two = trained(1), trained(2)
    finally:
        attention.set_block_rows(previous)
    assert one.plans._train_plan.shard_count(64) == 4
    for a, b in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_work_of_a_block_is_its_layers_work():
    from nncore import _plans
    inner = [nncore.Dense(32), nncore.Dense(8)]
    flat = nncore.Network([nncore.Dense(8), nncore.Dense(32), nncore.Dense(8)],
                          input_shape=(5, 4), seed=0)
    block = nncore.Network([nncore.Dense(8), nncore.Residual(*inner)], input_shape=(5, 4),
                           seed=0)
    assert _plans.forward_multiply_adds(block.layers) == \
        _plans.forward_multiply_adds(flat.layers) == 5 * (4 * 8 + 8 * 32 + 32 * 8)
