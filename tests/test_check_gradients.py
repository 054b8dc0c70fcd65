"""nncore.check_gradients: small errors for correct layers and networks,
large ones for a layer with a wrong backward, clear errors for bad calls."""
import numpy as np
import pytest

import nncore


@pytest.mark.parametrize("make", [lambda: nncore.Dense(4, "tanh"),
                                  lambda: nncore.Conv2D(2, 3, padding="same"),
                                  lambda: nncore.MaxPool2D(2)])
def test_native_layers_pass(make):
    shape = (3, 5) if isinstance(make(), nncore.Dense) else (6, 6, 2)
    x = np.random.default_rng(0).normal(size=(4,) + shape)
    errors = nncore.check_gradients(make(), x)
    assert "input" in errors and max(errors.values()) < 1e-6


class WrongScale(nncore.Layer):
    """y = 3 x, but backward forgets the factor."""

    def forward(self, x, training=False):
        return 3 * x

    def backward(self, dy):
        return dy


class Scale(nncore.Layer):
    """y = w * x with one trained scalar w."""

    def build(self, input_shape):
        self.w = np.array([1.5])
        self.params, self.grads = [self.w], [np.zeros(1)]
        super().build(input_shape)

    def forward(self, x, training=False):
        self.x = x
        return self.w[0] * x

    def backward(self, dy):
        self.grads[0][0] = np.sum(dy * self.x)
        return self.w[0] * dy


def test_a_wrong_backward_is_caught_and_a_right_python_layer_passes():
    x = np.random.default_rng(1).normal(size=(3, 4))
    assert nncore.check_gradients(WrongScale(), x)["input"] > 0.5
    errors = nncore.check_gradients(Scale(), x)
    assert set(errors) == {"params[0]", "input"} and max(errors.values()) < 1e-7


def test_network_errors_cover_every_parameter_and_sampling_is_bounded():
    rng = np.random.default_rng(2)
    net = nncore.Network([nncore.Conv2D(3, 3, activation="relu"), nncore.MaxPool2D(2),
                          nncore.Flatten(), nncore.Dense(2)],
                         input_shape=(8, 8, 1), dtype="float64", seed=0).use("mse")
    x, y = rng.normal(size=(5, 8, 8, 1)), rng.normal(size=(5, 2))
    errors = nncore.check_gradients(net, x, y, max_entries=10)
    assert list(errors) == ["layers[0].params[0]", "layers[0].params[1]",
                            "layers[3].params[0]", "layers[3].params[1]"]
    assert max(errors.values()) < 1e-5


def test_bad_calls():
    x = np.zeros((2, 3))
    net32 = nncore.Network([nncore.Dense(2)], input_shape=(3,)).use("mse")
    with pytest.raises(ValueError, match="float64"):
        nncore.check_gradients(net32, x, np.zeros((2, 2)))
    net = nncore.Network([nncore.Dense(2)], input_shape=(3,), dtype="float64").use("mse")
    with pytest.raises(ValueError, match="needs targets"):
        nncore.check_gradients(net, x)
    with pytest.raises(TypeError, match="Network or Layer"):
        nncore.check_gradients("net", x, x)
    with pytest.raises(ValueError, match="output shape"):
        nncore.check_gradients(nncore.Dense(2), x, np.zeros((2, 5)))


def test_other_threads_cannot_read_the_weights_while_they_are_nudged(monkeypatch):
    # a predict in another thread while check_gradients has a weight moved by h
    # would return outputs of weights that never existed: it is refused instead
    import threading
    net = nncore.Network([nncore.Dense(3, "tanh"), nncore.Dense(1)], input_shape=(2,),
                         dtype="float64", seed=0).use("mse")
    x = np.random.default_rng(0).normal(size=(5, 2))
    y = np.zeros((5, 1))
    outcomes = []
    evaluate = net.evaluate

    def evaluate_while_another_thread_predicts(*args, **kwargs):
        if not outcomes:
            def other():
                try:
                    net.predict(x)
                    outcomes.append("predicted")
                except RuntimeError as error:
                    outcomes.append(str(error))
            thread = threading.Thread(target=other)
            thread.start()
            thread.join()
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(net, "evaluate", evaluate_while_another_thread_predicts)
    errors = nncore.check_gradients(net, x, y)
    assert max(errors.values()) < 1e-6
    assert len(outcomes) == 1 and "fit is running on this network in another thread" \
        in outcomes[0]
