"""InferenceSession: the thinnest path from an array to a prediction."""
from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np

from ._data import check_first_layer_input, check_positive_int, network_inputs
from ._native.data import ready_batch, ready_output
from ._plans import native_ops
from ._threads import begin_native_run, end_native_run
from .network import Network, load


class InferenceSession:
    """Predict with a trained network, paying as little as possible per call.

    `InferenceSession(network)` or `InferenceSession("model.nncore")`.  The
    session checks the network once; `predict(x)` then checks x with a few
    attribute comparisons (full validation with a clear message only when
    they fail) and runs the whole network in one native call with the GIL
    released, writing into `out` when given (no allocation at all once
    warmed up).  Each thread gets its own buffers, so threads may predict at
    once.  A session built from a network reads that network's live weights:
    a `fit` of that network and a session predict exclude each other (the
    later one raises RuntimeError); to train while serving, serve a copy.
    `out` must not overlap x.

    Parameters
    ----------
    model : Network or path-like
        A built network, or the path of a model file.
    batch_size : int, optional
        Rows per native call.

    Raises
    ------
    ValueError
        If the network is not built or cannot run natively.
    ModelFormatError
        If the model file is damaged or hostile.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Dense(4, activation="relu"), nncore.Dense(2)],
    ...                      input_shape=(3,), seed=0)
    >>> session = nncore.InferenceSession(net)
    >>> x = np.ones((5, 3), dtype=np.float32)
    >>> out = np.empty((5, 2), dtype=np.float32)
    >>> result = session.predict(x, out=out)
    >>> bool(np.array_equal(out, net.predict(x)))
    True
    """

    def __init__(self, model: Union[Network, str, "os.PathLike[str]"],
                 batch_size: Optional[int] = None):
        network = model if isinstance(model, Network) else load(model)
        if not network.built:
            raise RuntimeError("InferenceSession: the network is not built; fit it or call "
                               "build(input_shape) first")
        if native_ops(network.layers) is None:
            raise TypeError("InferenceSession: the network has Python layers; use "
                            "Network.predict, which runs them")
        self.network = network
        self.dtype = network.dtype
        self.input_shape = tuple(network.layers[0]._built_input_shape())
        self.output_shape = tuple(network.layers[-1]._built_output_shape())
        # samples per chunk; None: chosen per call as Network.predict does
        self.batch_size = (None if batch_size is None
                           else check_positive_int(batch_size, "batch_size"))

    def predict(self, x, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Outputs for the samples of x, shape (n,) + output_shape (into `out`
        when given: a C-contiguous array of that shape and the session dtype)."""
        network = self.network
        ready = ready_batch(x, self.dtype, self.input_shape)
        if ready == 0:
            x = network_inputs(network, x)     # converts, or says what is wrong
        elif ready < 0:
            raise ValueError("x contains NaN or inf")
        else:
            check_first_layer_input(network, x)
        n = x.shape[0]
        if out is None:
            out = np.empty((n,) + self.output_shape, self.dtype)
        else:
            fits = ready_output(out, x, self.dtype, (n,) + self.output_shape)
            if fits == 0:
                raise ValueError(f"InferenceSession.predict: out must be a writeable "
                                 f"C-contiguous {self.dtype} array of shape "
                                 f"{(n,) + self.output_shape}")
            if fits < 0:
                raise ValueError("InferenceSession.predict: out overlaps x; pass a separate "
                                 "output array")
        with network.guard.reading("InferenceSession.predict"):
            plan = network.plans.predict_plan(network)
            assert plan is not None  # every layer is native: checked in __init__
            chunk, workers, blas_threads = network.plans.predict_schedule(network, n,
                                                                           self.batch_size)
            begin_native_run(blas_threads)
            try:
                plan.predict(x, out, chunk, workers)
            finally:
                end_native_run()
        return out
