"""The Network facade: article API, native fast path vs Python path, shapes."""
import numpy as np
import pytest

import nncore
from nncore import losses
from nncore.activations import tanh, tanh_prime
from nncore.losses import mse, mse_prime


class NumpyDense(nncore.Layer):
    """A fully connected layer written in pure NumPy, as a user would."""

    def __init__(self, W, b):
        super().__init__()
        self.W, self.b = W.copy(), b.copy()

    def build(self, input_shape):
        self.W = self.W.astype(self.dtype)
        self.b = self.b.astype(self.dtype)
        self.params = [self.W, self.b]
        self.grads = [np.zeros_like(self.W), np.zeros_like(self.b)]
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (self.W.shape[1],)

    def forward(self, x, training=False):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dy):
        x2 = self.x.reshape(-1, self.W.shape[0])
        dy2 = dy.reshape(-1, self.W.shape[1])
        self.grads[0][...] = x2.T @ dy2
        self.grads[1][...] = dy2.sum(0)
        return dy @ self.W.T


class NumpyTanh(nncore.Layer):
    def forward(self, x, training=False):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y ** 2)


def native_net(dtype="float64", seed=0):
    return nncore.Network([nncore.Dense(8), nncore.Tanh(), nncore.Dense(3), nncore.Tanh()],
                          dtype=dtype, seed=seed)


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    y = np.tanh(x[:, :3] * x[:, 2:5])
    return x, y


@pytest.mark.parametrize("batch_size", [1, 7])
def test_python_layers_match_native(batch_size):
    x, y = data()
    native = native_net().use("mse")
    native.build((5,))
    W1, b1, W2, b2 = [p.copy() for p in native.params]
    custom = nncore.Network([NumpyDense(W1, b1), NumpyTanh(), NumpyDense(W2, b2), NumpyTanh()],
                            dtype="float64", seed=0).use("mse")
    custom.build((5,))
    custom.rng.bit_generator.state = native.rng.bit_generator.state  # same shuffles
    h1 = native.fit(x, y, epochs=3, learning_rate=0.05, batch_size=batch_size, verbose=0)
    h2 = custom.fit(x, y, epochs=3, learning_rate=0.05, batch_size=batch_size, verbose=0)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-9)
    for a, b in zip(native.params, custom.params):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(native.predict(x), custom.predict(x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-9), ("float32", 2e-4)])
def test_per_sample_fast_path_matches_python_path(dtype, rtol):
    # per-sample SGD defers the first layer's updates over a window of samples;
    # the result must match the plain per-sample loop run in Python
    x, y = data(n=150)
    fast = native_net(dtype).use(mse, mse_prime)
    slow = native_net(dtype).use(nncore.article.FunctionLoss(mse, mse_prime))
    h_fast = fast.fit(x, y, epochs=2, learning_rate=0.1, verbose=0)
    h_slow = slow.fit(x, y, epochs=2, learning_rate=0.1, verbose=0)
    np.testing.assert_allclose(h_fast["loss"], h_slow["loss"], rtol=rtol)
    for a, b in zip(fast.params, slow.params):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)


def test_python_activation_functions_match_native():
    x, y = data()

    def my_tanh(v):
        return np.tanh(v)

    def my_tanh_prime(v):
        return 1 - np.tanh(v) ** 2

    nets = []
    for f, fp in ((tanh, tanh_prime), (my_tanh, my_tanh_prime)):
        net = nncore.Network([nncore.FCLayer(5, 4), nncore.ActivationLayer(f, fp),
                              nncore.FCLayer(4, 3)], dtype="float64", seed=3)
        net.use(mse, mse_prime)
        net.fit(x, y, epochs=2, learning_rate=0.05, verbose=0)
        nets.append(net)
    assert nets[0].layers[1].native_ops() is not None
    assert nets[1].layers[1].native_ops() is None
    for a, b in zip(nets[0].params, nets[1].params):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_minibatch_lowers_the_loss_and_is_deterministic():
    x, y = data(200)
    runs = []
    for _ in range(2):
        net = native_net("float32", seed=7).use("mse")
        history = net.fit(x, y, epochs=30, learning_rate=0.1, batch_size=16, verbose=0)
        runs.append(net.params)
        assert history["loss"][-1] < 0.5 * history["loss"][0]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_article_data_forms():
    # lists of (1, features) arrays, integer arrays, targets (n, 10) for outputs (1, 10)
    rng = np.random.default_rng(0)
    x = [rng.integers(0, 2, (1, 6)) for _ in range(12)]
    y = np.eye(3)[rng.integers(0, 3, 12)]
    net = nncore.Network(seed=1)
    net.add(nncore.FCLayer(6, 4))
    net.add(nncore.ActivationLayer(tanh, tanh_prime))
    net.add(nncore.FCLayer(4, 3))
    net.use(mse, mse_prime)
    net.fit(x, y, epochs=2, learning_rate=0.1, verbose=0)
    out = net.predict(x[:5])
    assert out.shape == (5, 1, 3) and out.dtype == np.float32
    # the article's older form FCLayer((1, 6), (1, 4)), ActivationLayer(shape, f, f')
    old = nncore.Network([nncore.FCLayer((1, 6), (1, 4)),
                          nncore.ActivationLayer((1, 4), tanh, tanh_prime)])
    history = old.use(mse, mse_prime).fit(x, np.zeros((12, 1, 4)), epochs=1, verbose=0)
    assert len(history["loss"]) == 1 and history["loss"][0] > 0


def test_chaining_and_summary():
    net = nncore.Network(input_shape=(784,)).add(nncore.Dense(100, activation="relu")) \
        .add(nncore.Dense(10)).add(nncore.Softmax())
    net.build()
    text = net.summary(print_fn=None)
    assert "(None, 100)" in text and "78,500" in text and "Total params: 79,510" in text


def test_sparse_and_logit_losses_train():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    labels = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1)
    net = nncore.Network([nncore.Dense(16, activation="relu"), nncore.Dense(3)], seed=0)
    net.use(losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(x, labels, epochs=40, learning_rate=0.1, batch_size=16, verbose=0)
    accuracy = (net.predict(x).argmax(1) == labels).mean()
    assert accuracy > 0.9


def test_binary_crossentropy_with_sigmoid_trains():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(float)[:, None]
    net = nncore.Network([nncore.Dense(16, activation="tanh"), nncore.Dense(1),
                          nncore.Sigmoid()], seed=0, dtype="float64")
    net.use("binary_crossentropy")
    net.fit(x, y, epochs=60, learning_rate=0.5, batch_size=8, verbose=0)
    assert ((net.predict(x) > 0.5) == (y > 0.5)).mean() > 0.9


def test_predict_batch_size_and_python_path_agree():
    x, y = data()
    net = native_net().use("mse")
    net.fit(x, y, epochs=1, verbose=0)
    full = net.predict(x)
    np.testing.assert_allclose(net.predict(x, batch_size=3), full, rtol=1e-12)
    out = x
    for layer in net.layers:
        out = layer.forward(out)
    np.testing.assert_allclose(out, full, rtol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 5])
def test_results_do_not_depend_on_how_fit_splits_the_steps(monkeypatch, batch_size):
    # fit runs steps natively in time-sized chunks; per-sample SGD defers
    # updates over windows, which must not depend on those chunk sizes
    from nncore import _training
    x, y = data(n=300)
    runs = []
    for seconds in (0.0, 1e9):   # every chunk "slow" (stays small), or all "fast"
        monkeypatch.setattr(_training.Trainer, "CHUNK_SECONDS", seconds)
        net = native_net("float32", seed=4).use(mse, mse_prime)
        net.fit(x, y, epochs=3, learning_rate=0.05, batch_size=batch_size, verbose=0)
        runs.append(net.params)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch_size", [1, 8])
def test_two_fits_equal_one_longer_fit(batch_size):
    x, y = data(n=100)
    one = native_net(seed=2).use("mse")
    one.fit(x, y, epochs=4, learning_rate=0.05, batch_size=batch_size, verbose=0)
    two = native_net(seed=2).use("mse")
    for _ in range(2):
        two.fit(x, y, epochs=2, learning_rate=0.05, batch_size=batch_size, verbose=0)
    for a, b in zip(one.params, two.params):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [lambda a: nncore.Dense(4, activation=a),
                                  lambda a: nncore.Conv2D(4, 2, activation=a)])
def test_a_fused_activation_may_be_an_activation_layer(make, tmp_path):
    # LeakyReLU(0.3) as the activation of a layer equals the layer followed
    # by LeakyReLU(0.3), and the slope survives saving
    x = np.random.default_rng(0).normal(size=(5, 3, 3, 2))
    fused = nncore.Network([make(nncore.LeakyReLU(0.3))], dtype="float64", seed=1).build(
        x.shape[1:])
    apart = nncore.Network([make(None), nncore.LeakyReLU(0.3)], dtype="float64",
                           seed=1).build(x.shape[1:])
    np.testing.assert_allclose(fused.predict(x), apart.predict(x), rtol=1e-14, atol=1e-14)
    assert (fused.predict(x) < 0).any()
    fused.save(tmp_path / "m.nncore")
    loaded = nncore.load(tmp_path / "m.nncore")
    assert loaded.layers[0].activation_alpha == 0.3
    np.testing.assert_array_equal(loaded.predict(x), fused.predict(x))
    with pytest.raises(ValueError, match="unknown activation"):
        make("swish")
