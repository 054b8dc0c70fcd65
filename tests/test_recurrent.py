"""SimpleRNN, LSTM and GRU against PyTorch (float64, weights mapped across:
forward, input gradient and weight gradients to 1e-12 relative), float32
against float64, finite differences, and a task only a recurrent layer
solves."""
import numpy as np
import pytest

import nncore
from reference import numeric_gradient, relative_error
from test_kernels import build

torch = pytest.importorskip("torch")
EXACT = 1e-12
CLASSES = {"simple": nncore.SimpleRNN, "lstm": nncore.LSTM, "gru": nncore.GRU}


def torch_module(cell, layer):
    """The PyTorch module computing `layer`, its weights mapped across
    (returns the module and a function taking its gradients back to Keras'
    layout)."""
    features, units = layer.kernel.shape[0], layer.units
    module = {"simple": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        features, units, batch_first=True).double()
    kernel, recurrent, bias = layer.kernel, layer.recurrent_kernel, layer.bias
    if cell == "gru":      # Keras (z, r, h) -> PyTorch (r, z, n)
        order = np.r_[units:2 * units, 0:units, 2 * units:3 * units]
        kernel, recurrent, bias = kernel[:, order], recurrent[:, order], bias[:, order]
        ih, hh = bias
    else:
        ih, hh = bias, np.zeros_like(bias)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(kernel.T))
        module.weight_hh_l0.copy_(torch.tensor(recurrent.T))
        module.bias_ih_l0.copy_(torch.tensor(ih))
        module.bias_hh_l0.copy_(torch.tensor(hh))

    def keras_grads():
        gk, gr = module.weight_ih_l0.grad.numpy().T, module.weight_hh_l0.grad.numpy().T
        gi, gh = module.bias_ih_l0.grad.numpy(), module.bias_hh_l0.grad.numpy()
        if cell == "gru":
            back = np.argsort(order)
            return [gk[:, back], gr[:, back], np.stack([gi, gh])[:, back]]
        return [gk, gr, gi]
    return module, keras_grads


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("sequences", [False, True])
@pytest.mark.parametrize("backwards", [False, True])
def test_recurrent_matches_torch(cell, sequences, backwards):
    rng = np.random.default_rng(0)
    steps, features, units, n = 7, 3, 5, 4
    layer = build(CLASSES[cell](units, return_sequences=sequences, go_backwards=backwards),
                  (steps, features), np.float64)
    layer.bias[...] = rng.normal(size=layer.bias.shape) * 0.5
    x = rng.normal(size=(n, steps, features))
    dy = rng.normal(size=(n,) + layer.output_shape)
    y = layer.forward(x)
    dx = layer.backward(dy)
    module, keras_grads = torch_module(cell, layer)
    tx = torch.tensor(x[:, ::-1].copy() if backwards else x, requires_grad=True)
    out, _ = module(tx)
    ty = out if sequences else out[:, -1]
    ty.backward(torch.tensor(dy))
    tdx = tx.grad.numpy()[:, ::-1] if backwards else tx.grad.numpy()
    assert relative_error(y, ty.detach().numpy()) < EXACT
    assert relative_error(dx, tdx) < EXACT
    for ours, theirs in zip(layer.grads, keras_grads()):
        assert ours.shape == theirs.shape
        assert relative_error(ours, theirs) < EXACT


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_recurrent_finite_differences_and_float32(cell):
    rng = np.random.default_rng(1)
    layer = build(CLASSES[cell](3, return_sequences=True), (4, 2), np.float64)
    layer.bias[...] = rng.normal(size=layer.bias.shape) * 0.5
    x = rng.normal(size=(2, 4, 2))
    weights = rng.normal(size=(2, 4, 3))
    layer.forward(x)
    dx = layer.backward(weights)
    grads = [g.copy() for g in layer.grads]
    f = lambda: float(np.sum(layer.forward(x) * weights))
    assert relative_error(dx, numeric_gradient(f, x)) < 1e-6
    for param, grad in zip(layer.params, grads):
        assert relative_error(grad, numeric_gradient(f, param)) < 1e-6
    single = build(CLASSES[cell](3, return_sequences=True), (4, 2), np.float32)
    single.set_weights(layer.get_weights())
    np.testing.assert_allclose(single.forward(x.astype(np.float32)), layer.forward(x),
                               rtol=1e-5, atol=1e-6)
    single.backward(weights.astype(np.float32))
    for ours, reference in zip(single.grads, grads):
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5)


def test_lstm_starts_with_keras_weights():
    layer = build(nncore.LSTM(4), (3, 2), np.float64)
    np.testing.assert_array_equal(layer.bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])
    q = layer.recurrent_kernel
    np.testing.assert_allclose(q @ q.T, np.eye(4), atol=1e-12)   # orthonormal rows


def parity_data(n, steps, seed):
    """Bit strings; the label is the parity of their ones (no bag-of-bits or
    window of fewer than `steps` bits predicts it better than chance)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, steps))
    return x, x.sum(axis=1) % 2


# parity gets harder with length, and each cell's training with Adam(0.01)
# from Keras' initial weights was seen to solve it (over several seeds, as
# PyTorch's) up to these lengths in 20 epochs
@pytest.mark.parametrize("cell,steps", [("lstm", 8), ("simple", 6), ("gru", 4)])
def test_recurrent_layer_learns_parity(cell, steps):
    x, y = parity_data(4000, steps, 0)
    tx, ty = parity_data(1000, steps, 1)
    loss = nncore.losses.SparseCategoricalCrossentropy(from_logits=True)
    net = nncore.Network([nncore.Embedding(2, 4), CLASSES[cell](16), nncore.Dense(2)],
                         input_shape=(steps,), seed=0)
    net.use(loss, optimizer=nncore.optimizers.Adam(0.01))
    net.fit(x, y, epochs=20, batch_size=32, verbose=0)
    accuracy = np.mean(net.predict(tx).argmax(axis=1) == ty)
    assert accuracy > 0.99, accuracy
    # without the recurrent layer (the same embedding, flattened) it cannot
    flat = nncore.Network([nncore.Embedding(2, 4), nncore.Flatten(), nncore.Dense(2)],
                          input_shape=(steps,), seed=0)
    flat.use(loss, optimizer=nncore.optimizers.Adam(0.01))
    flat.fit(x, y, epochs=5, batch_size=32, verbose=0)
    assert np.mean(flat.predict(tx).argmax(axis=1) == ty) < 0.6
