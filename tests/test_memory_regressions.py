"""Cases that once read or wrote outside a buffer; run them under
tools/memcheck.sh (AddressSanitizer) to check they stay fixed."""
import numpy as np

import nncore
from nncore.optimizers import SGD


def test_per_sample_training_of_a_single_dense_layer(dtype):
    # a one-op plan on the deferred per-sample SGD path: the backward pass
    # after the deferred first op has no op to run (it used to touch ops[1])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.25

    def trained(python_loss):
        net = nncore.Network([nncore.Dense(1)], dtype=dtype, seed=0)
        if python_loss:   # forces the layer-by-layer Python path
            net.use(nncore.losses.mse, lambda t, p: 2 * (p - t) / t.size)
        else:
            net.use("mse", optimizer=SGD(0.05))
        net.fit(x, y, epochs=3, batch_size=1, learning_rate=0.05, verbose=0)
        return net

    native, python = trained(False), trained(True)
    tolerance = 1e-4 if dtype == np.float32 else 1e-10
    for a, b in zip(native.get_weights(), python.get_weights()):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)
    assert np.abs(native.predict(x) - y).mean() < 0.3
