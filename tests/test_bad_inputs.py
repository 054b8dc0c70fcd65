"""Bad inputs to the public API, table-driven: each raises a documented
exception whose message names the culprit (layer index and class where there
is one) and the expected vs received shape or value."""
import numpy as np
import pytest

import nncore
from nncore._data import as_float_array
from nncore.losses import MSE, CategoricalCrossentropy, SparseCategoricalCrossentropy
from nncore.optimizers import SGD

X = np.random.default_rng(0).normal(size=(5, 4))
Y = np.random.default_rng(1).normal(size=(5, 2))
LABELS = np.array([0, 1, 2, 1, 0])


def regression():
    net = nncore.Network([nncore.Dense(3, activation="tanh"), nncore.Dense(2)], seed=0)
    return net.use("mse", optimizer="sgd")


def built():
    net = regression()
    net.build((4,))
    return net


def classifier():
    net = nncore.Network([nncore.Dense(3), nncore.Softmax()], seed=0)
    return net.use("sparse_categorical_crossentropy")


def fit(net, x, y, **kwargs):
    return lambda: net().fit(x, y, verbose=0, **kwargs)


def predict(x, **kwargs):
    return lambda: built().predict(x, **kwargs)


def added_after_use():
    net = built()
    net.predict(X)
    net.add(nncore.Dense(2))


def dense_backward_wrong_batch():
    layer = nncore.Dense(3)
    layer.forward(np.ones((2, 4)))
    layer.backward(np.ones((3, 3)))


def dense_backward_wrong_width():
    layer = nncore.Dense(3)
    layer.forward(np.ones((2, 4)))
    layer.backward(np.ones((2, 4)))


CASES = [
    # ---------------------------------------------------------- arrays: x
    ("x scalar", fit(regression, np.float64(1.0), Y), ValueError,
     "x must be batch first with at least one axis, got a scalar"),
    ("x wrong width", lambda: built().fit(np.ones((5, 3)), Y, verbose=0), ValueError,
     r"layer 0 \(Dense\): expected input shape \(None, 4\), received \(5, 3\)"),
    ("x wrong rank", predict(np.ones((5, 4, 1))), ValueError,
     r"layer 0 \(Dense\): expected input shape \(None, 4\), received \(5, 4, 1\)"),
    ("x 1-d", fit(regression, np.ones(5), Y), ValueError,
     r"layer 0 \(Dense\): expected input of shape \(None, ..., features\), received a scalar"),
    ("x strings", fit(regression, np.full((5, 4), "a"), Y), TypeError,
     "x must be a numeric array, got dtype <U1"),
    ("x objects", fit(regression, np.full((5, 4), None, dtype=object), Y), TypeError,
     "x must be a numeric array, got dtype object"),
    ("x complex", fit(regression, X + 1j, Y), TypeError,
     "x must be a numeric array, got dtype complex128"),
    ("x NaN", fit(regression, np.where(X > 1, np.nan, X), Y), ValueError,
     "x contains NaN or inf"),
    ("x inf", predict(np.full((2, 4), np.inf)), ValueError, "x contains NaN or inf"),
    ("x empty", fit(regression, np.empty((0, 4)), np.empty((0, 2))), ValueError,
     r"x is empty \(shape \(0, 4\)\)"),
    ("x zero-size batch", predict(np.empty((0, 4))), ValueError,
     r"x is empty \(shape \(0, 4\)\)"),
    ("x zero features", fit(regression, np.empty((5, 0)), Y), ValueError,
     r"x is empty \(shape \(5, 0\)\)"),
    ("x ragged list", fit(regression, [[1, 2], [3]], Y), ValueError,
     "x: the samples have different shapes"),
    # ---------------------------------------------------------- arrays: y
    ("y fewer samples", fit(regression, X, Y[:4]), ValueError,
     "x has 5 samples but y has 4"),
    ("y scalar", fit(regression, X, 3.0), ValueError,
     "x has 5 samples but y has no sample axis"),
    ("y wrong shape", fit(regression, X, np.ones((5, 3))), ValueError,
     r"MSE: expected targets of shape \(None, 2\) like the network output, "
     r"received \(5, 3\)"),
    ("y class labels for one-hot loss",
     lambda: nncore.Network([nncore.Dense(3)]).use("categorical_crossentropy")
     .fit(X, LABELS, verbose=0), ValueError, "sparse_categorical_crossentropy"),
    ("y strings", fit(regression, X, np.full((5, 2), "b")), TypeError,
     "y must be a numeric array, got dtype <U1"),
    ("y NaN", fit(regression, X, np.full((5, 2), np.nan)), ValueError,
     "y contains NaN or inf"),
    ("labels too large", fit(classifier, X, np.array([0, 1, 3, 1, 0])), ValueError,
     r"SparseCategoricalCrossentropy: labels must be in \[0, 3\), found 0..3"),
    ("labels negative", fit(classifier, X, np.array([0, -1, 2, 1, 0])), ValueError,
     r"labels must be in \[0, 3\), found -1..2"),
    ("labels fractional", fit(classifier, X, np.array([0, 0.5, 2, 1, 0])), ValueError,
     "labels must be integers"),
    ("labels NaN", fit(classifier, X, np.array([0, np.nan, 2, 1, 0])), ValueError,
     "labels must be integers"),
    ("labels wrong count", fit(classifier, X, np.zeros((5, 2))), ValueError,
     r"expected one class label per sample row, shape \(5,\), received \(5, 2\)"),
    # ---------------------------------------------------- hyper-parameters
    ("Dense(0)", lambda: nncore.Dense(0), ValueError,
     "Dense: units must be a positive integer, got 0"),
    ("Dense(-1)", lambda: nncore.Dense(-1), ValueError, "units must be a positive integer"),
    ("Dense(2.5)", lambda: nncore.Dense(2.5), ValueError, "got 2.5"),
    ("Dense('3')", lambda: nncore.Dense("3"), ValueError, "got '3'"),
    ("Dense(True)", lambda: nncore.Dense(True), ValueError, "got True"),
    ("Dense use_bias", lambda: nncore.Dense(3, use_bias="no"), TypeError,
     "Dense: use_bias must be True or False, got 'no'"),
    ("Dense input_size 0", lambda: nncore.Dense(3, input_size=0), ValueError,
     "Dense: input_size must be a positive integer, got 0"),
    ("Dense activation", lambda: nncore.Dense(3, activation="swish"), ValueError,
     "Dense: unknown activation 'swish'"),
    ("Dense initializer", lambda: nncore.Dense(3, kernel_initializer="ones"), ValueError,
     "unknown initializer 'ones'"),
    ("FCLayer wrong input", lambda: nncore.Network([nncore.FCLayer(3, 2)]).build((4,)),
     ValueError, r"layer 0 \(FCLayer\): expected input shape \(None, 3\), received \(None, 4\)"),
    ("Activation name", lambda: nncore.Activation("swish"), ValueError,
     "Activation: unknown activation 'swish'"),
    ("LeakyReLU alpha < 0", lambda: nncore.LeakyReLU(-1), ValueError,
     "LeakyReLU: alpha must be a finite number >= 0, got -1"),
    ("LeakyReLU alpha NaN", lambda: nncore.LeakyReLU(float("nan")), ValueError,
     "alpha must be a finite number"),
    ("ActivationLayer not functions", lambda: nncore.ActivationLayer("tanh"), TypeError,
     r"ActivationLayer takes \(activation, activation_prime\) functions"),
    ("SGD negative", lambda: SGD(-0.1), ValueError,
     "SGD: learning_rate must be > 0, got -0.1"),
    ("SGD zero", lambda: SGD(0), ValueError, "got 0"),
    ("SGD NaN", lambda: SGD(float("nan")), ValueError, "got nan"),
    ("SGD inf", lambda: SGD(float("inf")), ValueError, "got inf"),
    ("SGD string", lambda: SGD("fast"), TypeError,
     "SGD: learning_rate must be a number, got 'fast'"),
    ("fit epochs 0", fit(regression, X, Y, epochs=0), ValueError,
     "epochs must be a positive integer, got 0"),
    ("fit batch_size 0", fit(regression, X, Y, batch_size=0), ValueError,
     "batch_size must be a positive integer, got 0"),
    ("fit batch_size float", fit(regression, X, Y, batch_size=2.0), ValueError,
     "batch_size must be a positive integer, got 2.0"),
    ("fit learning_rate < 0", fit(regression, X, Y, learning_rate=-1), ValueError,
     "learning_rate must be a positive finite number, got -1"),
    ("predict batch_size 0", predict(X, batch_size=0), ValueError,
     "batch_size must be a positive integer, got 0"),
    ("Network dtype int", lambda: nncore.Network(dtype="int32"), ValueError,
     "Network: dtype must be float32 or float64, got 'int32'"),
    ("Network dtype unknown", lambda: nncore.Network(dtype="fp32"), ValueError,
     "Network: dtype must be float32 or float64, got 'fp32'"),
    ("Network input_shape 0", lambda: nncore.Network([nncore.Dense(2)], input_shape=(0,)),
     ValueError, r"Network: input_shape must be a tuple of positive integers, got \(0,\)"),
    ("Network input_shape str", lambda: nncore.Network(input_shape="ab"), ValueError,
     "input_shape must be a tuple of positive integers, got 'ab'"),
    ("Network input_shape int", lambda: nncore.Network(input_shape=4), TypeError,
     "input_shape must be a tuple of positive integers, got 4"),
    ("unknown loss", lambda: regression().use("hinge"), ValueError, "unknown loss 'hinge'"),
    ("loss without derivative", lambda: regression().use(lambda t, p: 0.0), TypeError,
     "needs its derivative"),
    ("unknown optimizer", lambda: regression().use("mse", optimizer="adamax2"), ValueError,
     "unknown optimizer 'adamax2'"),
    ("to_categorical negative", lambda: nncore.utils.to_categorical([-1, 2]), ValueError,
     "labels must be >= 0"),
    ("to_categorical too large", lambda: nncore.utils.to_categorical([0, 5], 3), ValueError,
     "label 5 >= num_classes 3"),
    ("Conv2D filters 0", lambda: nncore.Conv2D(0, 3), ValueError,
     "Conv2D: filters must be a positive integer, got 0"),
    ("Conv2D kernel larger than input",
     lambda: nncore.Network([nncore.Conv2D(2, 5)]).build((3, 3, 1)), ValueError,
     r"layer 0 \(Conv2D\)"),
    ("Conv2D on flat samples", lambda: nncore.Network([nncore.Conv2D(2, 3)]).build((9,)),
     ValueError, r"layer 0 \(Conv2D\): expected input of shape \(None, height, width, "
                 r"channels\), received \(None, 9\)"),
    ("pool larger than input",
     lambda: nncore.Network([nncore.MaxPool2D(4)]).build((3, 3, 1)), ValueError,
     r"layer 0 \(MaxPool2D\): pool_size \(4, 4\) is larger than the input"),
    ("Dropout rate 1", lambda: nncore.Dropout(1.0), ValueError,
     r"Dropout: rate must be in \[0, 1\), got 1.0"),
    ("Dropout rate negative", lambda: nncore.Dropout(-0.1), ValueError,
     r"rate must be in \[0, 1\)"),
    ("Dropout rate string", lambda: nncore.Dropout("half"), TypeError,
     "Dropout: rate must be a number, got 'half'"),
    ("BatchNormalization momentum", lambda: nncore.BatchNormalization(momentum=2), ValueError,
     r"BatchNormalization: momentum must be in \[0, 1\], got 2"),
    # ------------------------------------------------------------- order
    ("predict before build", lambda: regression().predict(X), RuntimeError,
     "the network is not built yet"),
    ("fit before use", lambda: nncore.Network([nncore.Dense(2)]).fit(X, Y, verbose=0),
     RuntimeError, r"set a loss with use\(...\) before fit"),
    ("build without layers", lambda: nncore.Network().build((4,)), RuntimeError,
     "add at least one layer"),
    ("build without shape", lambda: regression().build(), RuntimeError,
     "the input shape is unknown"),
    ("add a non-layer", lambda: nncore.Network().add(nncore.Dense), TypeError,
     "Network.add takes a nncore Layer"),
    ("add after use", added_after_use, RuntimeError, "already been used"),
    ("backward before forward", lambda: nncore.Dense(3).backward(np.ones((2, 3))),
     RuntimeError, "Dense: backward called before forward"),
    ("backward wrong batch", dense_backward_wrong_batch, ValueError,
     "Dense: the output gradient has 3 samples, the last forward had 2"),
    ("backward wrong width", dense_backward_wrong_width, ValueError,
     r"Dense: expected output gradient of shape \(None, 3\), received \(2, 4\)"),
    # ---------------------------------------------------- single layers
    ("layer input strings", lambda: nncore.Dense(3).forward(np.full((2, 4), "a")),
     TypeError, "Dense: input must be a numeric array, got dtype <U1"),
    ("layer input complex", lambda: nncore.ReLU().forward(np.ones((2, 4)) * 1j), TypeError,
     "ReLU: input must be a numeric array, got dtype complex128"),
    ("layer input scalar", lambda: nncore.Tanh().forward(np.float32(1)), ValueError,
     "Tanh: input must be batch first"),
    ("layer zero-size batch", lambda: nncore.Dense(3).forward(np.ones((0, 4))), ValueError,
     r"Dense: input is empty \(shape \(0, 4\)\)"),
    # ------------------------------------------------------------ losses
    ("loss shapes differ", lambda: MSE()(np.ones((4, 1)), np.ones((4, 3))), ValueError,
     r"MSE: expected y_true of shape \(4, 3\) like y_pred, received \(4, 1\)"),
    ("loss gradient shapes differ", lambda: MSE().gradient(np.ones((4, 5)), np.ones((4, 3))),
     ValueError, r"expected y_true of shape \(4, 3\)"),
    ("loss labels out of range",
     lambda: SparseCategoricalCrossentropy()(np.array([0, 7]), np.full((2, 3), 1 / 3)),
     ValueError, r"labels must be integers in \[0, 3\), found 0..7"),
    ("loss label count",
     lambda: SparseCategoricalCrossentropy()(np.array([0, 1, 2]), np.full((2, 3), 1 / 3)),
     ValueError, r"expected one class label per row of y_pred, shape \(2,\)"),
    ("loss strings", lambda: CategoricalCrossentropy()(np.full((2, 3), "a"), np.ones((2, 3))),
     TypeError, "CategoricalCrossentropy: y_true must be a numeric array"),
    ("loss objects", lambda: MSE()(np.ones((2, 3)), np.full((2, 3), None, dtype=object)),
     TypeError, "MSE: y_pred must be a numeric array, got dtype object"),
    ("loss empty", lambda: MSE()(np.ones((0, 3)), np.ones((0, 3))), ValueError,
     "MSE: y_pred is empty"),
    # ----------------------------------------------------------- weights
    ("set_weights count", lambda: built().set_weights([np.ones((4, 3))]), ValueError,
     "Network.set_weights: expected 4 arrays, received 1"),
    ("set_weights shape",
     lambda: built().set_weights([np.ones((4, 3)), np.ones(3), np.ones((2, 3)), np.ones(2)]),
     ValueError, r"layer 1 \(Dense\): weight 0 expected shape \(3, 2\), received \(2, 3\)"),
    ("set_weights strings",
     lambda: built().set_weights([np.full((4, 3), "1"), np.ones(3), np.ones((3, 2)),
                                  np.ones(2)]),
     TypeError, r"layer 0 \(Dense\): weight 0 expected dtype float32, received <U1"),
    ("set_weights unbuilt", lambda: regression().set_weights([]), RuntimeError,
     "not built yet"),
]


@pytest.mark.parametrize("call, error, message", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message) as raised:
        call()
    assert type(raised.value) is error      # not a subclass that callers cannot expect


@pytest.mark.parametrize("convert", [
    lambda x: np.asfortranarray(x),
    lambda x: np.repeat(x, 2, axis=1)[:, ::2],          # non-contiguous view
    lambda x: x.astype(np.float16).astype(np.float64),  # exactly representable values
    lambda x: x.tolist(),
    lambda x: x.astype(">f8"),                           # big-endian
], ids=["fortran", "strided", "float64", "list", "big-endian"])
def test_unusual_layouts_are_accepted_with_the_same_result(convert, dtype):
    x = np.random.default_rng(2).normal(size=(12, 4)).astype(np.float16).astype(dtype)
    y = np.random.default_rng(3).normal(size=(12, 2))

    def trained(inputs):
        net = nncore.Network([nncore.Dense(3, activation="tanh"), nncore.Dense(2)],
                             dtype=dtype, seed=0).use("mse", optimizer=SGD(0.1))
        net.fit(inputs, y, epochs=2, batch_size=3, verbose=0)
        return net

    reference = trained(x)
    other = trained(convert(x))
    assert all(np.array_equal(a, b) for a, b in zip(reference.get_weights(),
                                                    other.get_weights()))
    assert np.array_equal(reference.predict(convert(x)), reference.predict(x))


def test_conversion_happens_once():
    x = np.ones((3, 4), np.float32)
    assert as_float_array(x, np.float32, "x") is x           # already right: no copy
    f = np.asfortranarray(np.ones((3, 4)))
    converted = as_float_array(f, np.float32, "x")
    assert converted.flags.c_contiguous and converted.dtype == np.float32
    assert as_float_array(converted, np.float32, "x") is converted


def test_integer_and_boolean_inputs_are_numbers():
    net = built()
    assert np.array_equal(net.predict(np.ones((2, 4), np.int64)),
                          net.predict(np.ones((2, 4), np.float32)))
    assert np.array_equal(net.predict(np.ones((2, 4), bool)),
                          net.predict(np.ones((2, 4), np.float32)))
