"""A call that raises leaves the network exactly as it was: each public
call that changes state is made to fail, then the network is compared with
an untouched twin -- config, weights, then a fit, a save (byte for byte)
and a load of both."""
import numpy as np
import pytest

import nncore
from nncore.layers import Conv2D, Dense, Flatten, MaxPool2D


def dense_net(built=True):
    net = nncore.Network([Dense(5, activation="tanh"), Dense(2)],
                         input_shape=(3,) if built else None, seed=3)
    return net.use("mse", optimizer="adam", metrics=["mae"])


def conv_net():
    net = nncore.Network([Conv2D(4, 3, activation="relu"), MaxPool2D(2)], seed=4)
    return net.use("mse", optimizer="sgd")


def data(shape, outputs, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + shape), rng.normal(size=(n, outputs))


def assert_same(net, twin, tmp_path, x, y):
    assert net.get_config() == twin.get_config()
    assert net.built == twin.built
    if net.built:
        assert all(np.array_equal(a, b) for a, b in zip(net.get_weights(),
                                                        twin.get_weights()))
    for n in (net, twin):
        n.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(net.get_weights(), twin.get_weights()))
    net.save(tmp_path / "net.nncore")
    twin.save(tmp_path / "twin.nncore")
    assert (tmp_path / "net.nncore").read_bytes() == (tmp_path / "twin.nncore").read_bytes()
    loaded = nncore.load(tmp_path / "net.nncore")
    assert np.array_equal(loaded.predict(x), twin.predict(x))
    assert loaded.evaluate(x, y) == twin.evaluate(x, y)


@pytest.mark.parametrize("call", ["use", "compile"])
def test_use_with_an_unknown_metric_changes_nothing(tmp_path, call):
    net, twin = dense_net(), dense_net()
    with pytest.raises(ValueError, match="acuracy"):
        if call == "use":
            net.use("mse", metrics=["acuracy"])
        else:
            net.compile(optimizer="sgd", loss="mse", metrics=["acuracy"])
    assert net.optimizer is not None and net.metrics == ["mae"]
    net.copy()
    assert_same(net, twin, tmp_path, *data((3,), 2))


def test_a_failed_build_leaves_no_layer_half_built(tmp_path):
    net, twin = conv_net(), conv_net()
    with pytest.raises(ValueError, match="layer 0 \\(Conv2D\\)"):
        net.build((28, 28))
    assert net.input_shape is None and not any(layer.built for layer in net.layers)
    net.add(Flatten())                 # was: AssertionError: MaxPool2D is not built
    twin.add(Flatten())
    nncore.Network.from_config(net.get_config())
    net.build((8, 8, 1))
    twin.build((8, 8, 1))
    assert_same(net, twin, tmp_path, *data((8, 8, 1), 36))


def test_a_fit_on_data_of_the_wrong_shape_leaves_the_network_unbuilt(tmp_path):
    net, twin = conv_net(), conv_net()
    for n in (net, twin):
        n.add(Flatten())
    x, y = data((8, 8), 36)
    with pytest.raises(ValueError):
        net.fit(x, y, verbose=0)
    assert not net.built and net.input_shape is None
    assert_same(net, twin, tmp_path, *data((8, 8, 1), 36))


def test_a_fit_whose_setup_fails_changes_nothing(tmp_path):
    net, twin = dense_net(built=False), dense_net(built=False)
    x, y = data((3,), 2)
    with pytest.raises(ValueError):
        net.fit(x, y[:, :1], verbose=0)          # x builds the network, y is refused
    assert not net.built
    with pytest.raises(ValueError):
        net.fit(x, y, verbose=0, validation_data=(x, y[:, :1]))
    assert not net.built and net.shuffle_state is None
    assert_same(net, twin, tmp_path, x, y)
    with pytest.raises(TypeError):                     # built and trained, then refused
        net.fit(x, y, verbose=0, class_weight=[1, 2])
    twin_weights = twin.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(net.get_weights(), twin_weights))
    assert np.array_equal(net.shuffle_state, twin.shuffle_state)


def test_set_weights_with_one_wrong_array_changes_nothing(tmp_path):
    net, twin = dense_net(), dense_net()
    weights = [w + 1 for w in net.get_weights()]
    weights[-1] = np.zeros(7)
    with pytest.raises(ValueError, match="layer 1 \\(Dense\\)"):
        net.set_weights(weights)
    assert_same(net, twin, tmp_path, *data((3,), 2))


def test_add_of_a_layer_that_cannot_be_built_changes_nothing(tmp_path):
    net, twin = dense_net(), dense_net()
    layer = Conv2D(2, 3)
    with pytest.raises(ValueError, match="layer 2 \\(Conv2D\\)"):
        net.add(layer)
    assert len(net.layers) == 2 and not layer.built
    nncore.Network([layer], input_shape=(5, 5, 1))   # the layer is free again
    assert_same(net, twin, tmp_path, *data((3,), 2))


def test_load_weights_of_another_structure_changes_nothing(tmp_path):
    other = nncore.Network([Dense(4), Dense(2)], input_shape=(3,))
    other.save_weights(tmp_path / "other.nncore")
    net, twin = dense_net(), dense_net()
    with pytest.raises(ValueError):
        net.load_weights(tmp_path / "other.nncore")
    assert_same(net, twin, tmp_path, *data((3,), 2))
    unbuilt, twin = dense_net(built=False), dense_net(built=False)
    unbuilt.input_shape = twin.input_shape = (3,)    # as a loaded config leaves it
    with pytest.raises(ValueError):
        unbuilt.load_weights(tmp_path / "other.nncore")
    assert not unbuilt.built
    assert_same(unbuilt, twin, tmp_path, *data((3,), 2))
