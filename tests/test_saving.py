"""Saving and loading: round trips, configs, weights, copies, pickling,
registered user classes and resuming training bit-identically."""
import copy
import io
import json
import multiprocessing
import os
import pickle
import zipfile

import numpy as np
import pytest

import nncore
from nncore import registry, saving
from nncore.network import loads
from nncore.activations import sigmoid, sigmoid_prime, tanh, tanh_prime
from nncore.losses import mse, mse_prime
from nncore.optimizers import SGD


@nncore.register_layer
class Scale(nncore.Layer):
    """A Python layer with a parameter and a non-trained state array."""

    def __init__(self, factor=1.0, name=None):
        super().__init__(name)
        self.factor = factor

    def build(self, input_shape):
        width = input_shape[-1]
        self.scale = np.full(width, self.factor, self.dtype)
        self.params, self.grads = [self.scale], [np.zeros_like(self.scale)]
        self.seen = np.zeros(width, self.dtype)
        self.state = [self.seen]
        super().build(input_shape)

    def get_config(self):
        return {"factor": self.factor, "name": self.name}

    def forward(self, x, training=False):
        if not self.built:
            self.build(np.shape(x)[1:])
        self.x = np.asarray(x, self.dtype)
        if training:
            self.seen += np.abs(self.x).reshape(-1, self.x.shape[-1]).mean(0)
        return self.x * self.scale

    def backward(self, dy):
        self.grads[0][...] = (dy * self.x).reshape(-1, self.x.shape[-1]).sum(0)
        return dy * self.scale


class Unregistered(Scale):
    pass


@registry.register_optimizer
class TaggedSGD(SGD):
    """SGD with one state array per parameter, to test the state protocol."""

    def build(self, params, dtype):
        self.tags = [np.zeros(p.shape, dtype) for p in params]
        super().build(params, dtype)

    def get_state(self):
        return [t.copy() for t in self.tags] if hasattr(self, "tags") else super().get_state()

    def load_state(self, arrays):
        if [a.shape for a in arrays] != [t.shape for t in self.tags]:
            raise ValueError("TaggedSGD: state shapes do not match the parameters")
        for tag, value in zip(self.tags, arrays):
            tag[...] = value


def mlp(dtype="float32", seed=0, optimizer="sgd", loss="categorical_crossentropy"):
    net = nncore.Network([nncore.Dense(6, activation="tanh"), nncore.ReLU(),
                          nncore.FCLayer(6, 5), nncore.LeakyReLU(0.2),
                          nncore.Dense(3), nncore.Softmax()], dtype=dtype, seed=seed)
    net.use(loss, optimizer=optimizer)
    return net


def data(n=32, features=4, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    return x, nncore.utils.to_categorical(rng.integers(0, classes, n), classes)


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(
        u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v)
        for u, v in zip(wa, wb))


def test_round_trip_keeps_predictions_config_and_weights(tmp_path, dtype):
    x, y = data()
    net = mlp(dtype)
    net.fit(x, y, epochs=3, batch_size=4, verbose=0)
    path = tmp_path / "model.nncore"
    net.save(path)
    loaded = nncore.load(path)
    assert loaded.get_config() == net.get_config()
    assert loaded.dtype == dtype and loaded.built and loaded.input_shape == (4,)
    assert same_weights(loaded, net)
    assert np.array_equal(loaded.predict(x), net.predict(x))
    assert type(loaded.loss) is type(net.loss) and type(loaded.optimizer) is SGD
    assert loaded.optimizer.learning_rate == net.optimizer.learning_rate
    # a file is a function of the network: saving again gives the same bytes
    assert saving.dumps(loaded) == saving.dumps(net)


def test_config_is_plain_json_and_from_config_gives_fresh_network():
    net = mlp()
    net.build((4,))
    config = net.get_config()
    assert json.loads(json.dumps(config)) == config
    assert [layer["class"] for layer in config["layers"]] == \
        ["Dense", "ReLU", "FCLayer", "LeakyReLU", "Dense", "Softmax"]
    assert config["layers"][3]["config"] == {"alpha": 0.2, "name": None}
    fresh = nncore.Network.from_config(config)
    assert fresh.built and fresh.get_config() == config   # it has an input shape
    fresh.build()
    fresh.set_weights(net.get_weights())
    x, _ = data()
    assert np.array_equal(fresh.predict(x), net.predict(x))


def test_unbuilt_network_round_trips():
    net = nncore.Network([nncore.Dense(3), nncore.Sigmoid()], seed=3)
    loaded = loads(saving.dumps(net))
    assert not loaded.built and loaded.get_config() == net.get_config()
    loaded.build((2,))
    net.build((2,))
    assert same_weights(loaded, net)      # same seed and generator state


def test_get_weights_returns_copies_and_set_weights_checks(dtype):
    net = mlp(dtype)
    net.build((4,))
    weights = net.get_weights()
    assert [w.shape for w in weights] == [(4, 6), (6,), (6, 5), (5,), (5, 3), (3,)]
    weights[0][...] = 7
    assert not (net.layers[0].W == 7).any()
    before = net.get_weights()
    bad_shape = [w.copy() for w in before]
    bad_shape[2] = np.zeros((5, 6))
    with pytest.raises(ValueError, match=r"layer 2 \(FCLayer\): weight 0 expected shape "
                                         r"\(6, 5\), received \(5, 6\)"):
        net.set_weights(bad_shape)
    bad_dtype = [w.copy() for w in before]
    bad_dtype[4] = bad_dtype[4] + 1j
    with pytest.raises(TypeError, match=r"layer 4 \(Dense\): weight 0 expected dtype"):
        net.set_weights(bad_dtype)
    with pytest.raises(ValueError, match="expected 6 arrays, received 5"):
        net.set_weights(before[:5])
    assert same_weights(net, mlp(dtype).build((4,)))   # nothing changed on failure
    twice = [2 * w for w in before]
    net.set_weights(twice)
    assert all(np.array_equal(a, b) for a, b in zip(net.get_weights(), twice))
    with pytest.raises(RuntimeError, match="not built"):
        mlp().set_weights(before)


def test_set_weights_updates_the_native_plans():
    x, y = data()
    net = mlp()
    net.fit(x, y, epochs=1, verbose=0)
    other = mlp(seed=9).build((4,))
    net.predict(x)                     # a plan exists and points at the arrays
    net.set_weights(other.get_weights())
    assert np.array_equal(net.predict(x), other.predict(x))


def test_copy_is_independent():
    x, y = data()
    net = mlp()
    net.fit(x, y, epochs=1, batch_size=4, verbose=0)
    twin = net.copy()
    assert same_weights(twin, net)
    twin.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert not same_weights(twin, net)
    net.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert same_weights(twin, net)     # same optimizer state and random state


def test_pickle_and_deepcopy_go_through_the_format():
    x, y = data()
    net = mlp()
    net.fit(x, y, epochs=1, verbose=0)
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert clone is not net and same_weights(clone, net)
        assert np.array_equal(clone.predict(x), net.predict(x))
    # the pickle names only nncore's loader and carries model-file bytes
    class OnlyTheLoader(pickle.Unpickler):
        def find_class(self, module, name):
            assert (module, name) == ("nncore.network", "loads")
            return super().find_class(module, name)
    clone = OnlyTheLoader(io.BytesIO(pickle.dumps(net))).load()
    assert same_weights(clone, net)


def _predict_in_child(net, x):
    return net.predict(x)


def test_network_moves_between_processes():
    x, y = data()
    net = mlp()
    net.fit(x, y, epochs=1, verbose=0)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        out = pool.apply(_predict_in_child, (net, x))
    assert np.array_equal(out, net.predict(x))


def test_article_network_saves():
    x = np.array([[[0, 0]], [[0, 1]], [[1, 0]], [[1, 1]]])
    net = nncore.Network(seed=0)
    net.add(nncore.FCLayer(2, 3))
    net.add(nncore.ActivationLayer(tanh, tanh_prime))
    net.add(nncore.FCLayer(3, 1))
    net.add(nncore.ActivationLayer(sigmoid, sigmoid_prime))
    net.use(mse, mse_prime)
    net.fit(x, np.array([[[0]], [[1]], [[1]], [[0]]]), epochs=5, learning_rate=0.1, verbose=0)
    loaded = loads(saving.dumps(net))
    assert isinstance(loaded.layers[1], nncore.ActivationLayer)
    assert loaded.layers[3].function is sigmoid
    assert np.array_equal(loaded.predict(x), net.predict(x))


def test_unsavable_parts_are_refused_with_a_clear_message(tmp_path):
    net = nncore.Network([nncore.Dense(2), nncore.ActivationLayer(np.sin, np.cos)])
    with pytest.raises(ValueError, match=r"layer 1 \(ActivationLayer\): ActivationLayer "
                                         r"with arbitrary Python functions cannot be saved"):
        net.save(tmp_path / "m")
    net = nncore.Network([nncore.Dense(2), Unregistered()])
    with pytest.raises(ValueError, match=r"layer 1 \(Unregistered\): Unregistered is not a "
                                         r"registered layer class.*register_layer"):
        net.get_config()
    net = nncore.Network([nncore.Dense(2)]).use(lambda t, p: 0.0, lambda t, p: p)
    with pytest.raises(ValueError, match="loss .* Python functions and cannot be saved"):
        net.get_config()
    net = nncore.Network([nncore.Dense(2, kernel_initializer=lambda r, s, i, o: r.random(s))])
    with pytest.raises(ValueError, match=r"layer 0 \(Dense\): the initializer .* cannot "
                                         r"be saved"):
        net.get_config()
    assert os.listdir(tmp_path) == []   # no half-written or temporary file left


def test_layers_without_get_config_say_so():
    class Custom(nncore.Layer):
        def __init__(self, size, name=None):
            super().__init__(name)
    nncore.register_layer(Custom, name="CustomNoConfig")
    with pytest.raises(NotImplementedError, match="must implement get_config"):
        nncore.Network([Custom(3)]).get_config()


def test_registered_python_layer_round_trips_with_state(tmp_path):
    x, y = data()
    net = nncore.Network([nncore.Dense(5, activation="tanh"), Scale(0.5), nncore.Dense(3),
                          nncore.Softmax()], seed=2)
    net.use("categorical_crossentropy", optimizer=SGD(0.05))
    net.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert net.layers[1].seen.any()
    net.save(tmp_path / "m.nncore")
    loaded = nncore.load(tmp_path / "m.nncore")
    assert isinstance(loaded.layers[1], Scale) and loaded.layers[1].factor == 0.5
    assert np.array_equal(loaded.layers[1].seen, net.layers[1].seen)
    assert same_weights(loaded, net)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)
    net.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert same_weights(loaded, net)


def test_register_layer_rejects_bad_use():
    with pytest.raises(TypeError, match="subclass of nncore.Layer"):
        nncore.register_layer(int)

    class Dense(nncore.Layer):
        pass
    with pytest.raises(ValueError, match="'Dense' is already taken"):
        nncore.register_layer(Dense)


OPTIMIZERS = {"sgd": lambda: SGD(0.05),
              "momentum": lambda: SGD(0.05, momentum=0.9, nesterov=True),
              "adam": lambda: nncore.optimizers.Adam(0.01)}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [1, 6])
def test_resuming_training_is_bit_identical(tmp_path, dtype, shuffle, optimizer, batch_size):
    # train 2 epochs, save, load, train 2 more == train 4 epochs straight
    x, y = data(n=40)

    def train(net, epochs):
        net.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle, verbose=0)

    resumed = mlp(dtype, optimizer=OPTIMIZERS[optimizer]())
    train(resumed, 2)
    resumed.save(tmp_path / "half.nncore")
    resumed = nncore.load(tmp_path / "half.nncore")
    assert resumed.rng.bit_generator.state != np.random.default_rng(0).bit_generator.state
    assert resumed.optimizer.get_config() == OPTIMIZERS[optimizer]().get_config()
    train(resumed, 2)

    reference = mlp(dtype, optimizer=OPTIMIZERS[optimizer]())
    train(reference, 4)
    assert same_weights(resumed, reference)


def test_optimizer_state_protocol(tmp_path):
    x, y = data()
    net = mlp(optimizer=TaggedSGD(0.05))
    net.fit(x, y, epochs=1, verbose=0)
    for i, tag in enumerate(net.optimizer.tags):
        tag[...] = i + 1
    net.save(tmp_path / "with.nncore")
    net.save(tmp_path / "without.nncore", include_optimizer=False)
    loaded = nncore.load(tmp_path / "with.nncore")
    assert isinstance(loaded.optimizer, TaggedSGD)
    assert [a.shape for a in loaded.optimizer.get_state()] == [t.shape for t in net.optimizer.tags]
    loaded.fit(x, y, epochs=1, verbose=0)          # build installs the pending state
    assert [float(t.flat[0]) for t in loaded.optimizer.tags] == [1, 2, 3, 4, 5, 6]
    bare = nncore.load(tmp_path / "without.nncore")
    bare.fit(x, y, epochs=1, verbose=0)
    assert not any(t.any() for t in bare.optimizer.tags)


def test_atomic_save_never_leaves_a_partial_file(tmp_path, monkeypatch):
    net = mlp()
    net.build((4,))
    path = tmp_path / "model.nncore"
    net.save(path)
    original = path.read_bytes()

    def crash(array, *args, **kwargs):
        raise KeyboardInterrupt("power cut")
    other = mlp(seed=5).build((4,))
    monkeypatch.setattr(np.lib.format, "write_array", crash)
    with pytest.raises(KeyboardInterrupt):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["model.nncore"]
    other.save(path)
    assert same_weights(nncore.load(path), other)


def test_file_layout_is_a_plain_zip_of_json_and_npy(tmp_path):
    net = mlp("float64")
    net.build((4,))
    net.save(tmp_path / "m.nncore")
    with zipfile.ZipFile(tmp_path / "m.nncore") as archive:
        names = archive.namelist()
        document = json.loads(archive.read("nncore.json"))
        assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())
    assert names == ["nncore.json"] + [f"w{i}.npy" for i in range(6)]
    assert document["magic"] == "nncore.model" and document["format_version"] == 1
    assert document["nncore_version"] == nncore.__version__
    # the arrays are ordinary .npy members: numpy reads them without pickles
    with np.load(tmp_path / "m.nncore", allow_pickle=False) as npz:
        assert np.array_equal(npz["w0"], net.layers[0].W)


def test_joblib_dump_and_load(tmp_path):
    joblib = pytest.importorskip("joblib")
    x, y = data()
    net = mlp()
    net.fit(x, y, epochs=1, verbose=0)
    joblib.dump(net, tmp_path / "net.joblib")
    assert same_weights(joblib.load(tmp_path / "net.joblib"), net)


def test_convolutional_network_round_trips_and_resumes(tmp_path):
    # every layer kind, batch-norm moving statistics and the dropout mask
    # generator (layer state), and Adam's moments and step count
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 2))
    y = nncore.utils.to_categorical(np.arange(16) % 3, 3)

    def cnn():
        net = nncore.Network([
            nncore.Conv2D(4, 3, padding="same", activation="relu"),
            nncore.BatchNormalization(), nncore.MaxPool2D(2),
            nncore.Conv2D(3, (2, 2), strides=2, padding=1), nncore.AvgPool2D(2, strides=1),
            nncore.Dropout(0.3), nncore.GlobalAveragePooling2D(), nncore.Dense(3),
            nncore.Softmax()], seed=0)
        return net.use("categorical_crossentropy", optimizer=nncore.optimizers.Adam(0.01))

    net = cnn()
    net.fit(x, y, epochs=1, batch_size=4, verbose=0)
    net.save(tmp_path / "cnn.nncore")
    loaded = nncore.load(tmp_path / "cnn.nncore")
    assert loaded.get_config() == net.get_config()
    assert np.array_equal(loaded.predict(x), net.predict(x))
    assert [len(layer.state) for layer in loaded.layers] == [0, 2, 0, 0, 0, 1, 0, 0, 0]
    loaded.fit(x, y, epochs=1, batch_size=4, verbose=0)
    reference = cnn()
    reference.fit(x, y, epochs=1, batch_size=4, verbose=0)
    reference.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert same_weights(loaded, reference)


def test_article_convolution_layers_round_trip():
    net = nncore.Network([nncore.ConvLayer((6, 6, 1), (3, 3), 2), nncore.FlattenLayer(),
                          nncore.FCLayer(32, 2)], seed=1).build((6, 6, 1))
    loaded = loads(saving.dumps(net))
    assert loaded.get_config()["layers"][0] == {
        "class": "ConvLayer", "config": {"input_shape": [6, 6, 1], "kernel_shape": [3, 3],
                                         "layer_depth": 2,
                                         "kernel_initializer": "glorot_uniform",
                                         "name": None}}
    x = np.random.default_rng(2).normal(size=(3, 6, 6, 1))
    assert np.array_equal(loaded.predict(x), net.predict(x))
