"""Prediction over dask arrays on a Dask cluster.

Needs dask (`pip install "nncore[dask]"`: dask[array] and distributed);
`import nncore` does not import this module.  Training on dask arrays needs
nothing from here: `Network.fit`, `evaluate` and `predict` accept dask arrays
and stream them one block at a time.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as error:                                   # pragma: no cover
    raise ImportError("nncore.dask needs dask: pip install 'nncore[dask]' "
                      "(or pip install 'dask[array]' distributed)") from error

from ._adapters import is_dask_array
from ._threads import get_num_threads, set_num_threads
from .network import Network, load

__all__ = ["predict"]


def _one_thread() -> None:
    """Run nncore single-threaded in this process: each Dask worker thread
    then predicts with one core (no oversubscription)."""
    if get_num_threads() != 1:
        set_num_threads(1)


def _model_from(model):
    """A Network or a fitted estimator from `model` (a path is loaded)."""
    if isinstance(model, (str, os.PathLike)):
        return load(model)
    if isinstance(model, Network):
        if not model.built:
            raise ValueError("nncore.dask.predict: the network is not built yet; fit it or "
                             "call build(input_shape) first")
        return model
    if hasattr(model, "network_") and hasattr(model, "predict"):
        return model
    raise TypeError(f"nncore.dask.predict: model must be a nncore.Network, a fitted "
                    f"nncore.sklearn estimator or a model-file path, got "
                    f"{type(model).__name__}")


def _predict_block(block: np.ndarray, model, method: str, batch_size: Optional[int],
                   single_thread: bool = False):
    # one block of rows -> its predictions, on whichever worker holds the block
    if single_thread:
        _one_thread()
    if isinstance(model, Network):
        return model.predict(block, batch_size)
    return getattr(model, method)(block)


def _client():
    try:
        from distributed import default_client
        return default_client()
    except (ImportError, ValueError):
        return None


def predict(model, X, method: str = "predict", batch_size: Optional[int] = None):
    """Predictions for the dask array X (batch first, any chunking along the
    rows) as a dask array with X's row chunks.

    `model` is a `nncore.Network`, a fitted `nncore.sklearn` estimator or the
    path of a model file; `method` names the estimator method to call
    ("predict", "predict_proba", "predict_log_proba"; networks always
    predict).  With a `distributed` client, the model is scattered to every
    worker once (broadcast) and the graph holds only a reference to it; each
    worker thread predicts its blocks with one nncore thread.  Without a
    client, the graph holds the model once and dask's local scheduler runs
    it with the current nncore thread setting.  Nothing is computed until you
    call `.compute()` (or persist) on the result.

    Parameters
    ----------
    model : Network, NNClassifier, NNRegressor or path-like
        What predicts.
    X : dask.array.Array
        The samples, batch first.
    method : {"predict", "predict_proba", "predict_log_proba"}, default "predict"
        The estimator method to call.
    batch_size : int, optional
        Rows per native call within a block.

    Returns
    -------
    dask.array.Array
        The predictions, chunked along the rows as X.

    Raises
    ------
    TypeError
        If X is not a dask array.
    ValueError
        If `method` is unknown or the model cannot take X's sample shape.

    Examples
    --------
    >>> import numpy as np, dask.array as da, nncore, nncore.dask
    >>> net = nncore.Network([nncore.Dense(2)], input_shape=(3,), seed=0)
    >>> X = da.ones((10, 3), chunks=4, dtype=np.float32)
    >>> out = nncore.dask.predict(net, X)
    >>> out.chunks, out.compute().shape
    (((4, 4, 2), (2,)), (10, 2))
    """
    if not is_dask_array(X):
        raise TypeError(f"nncore.dask.predict: X must be a dask array, got "
                        f"{type(X).__name__} (use the model's own predict for NumPy arrays)")
    if X.ndim < 2:
        raise ValueError(f"nncore.dask.predict: X must be batch first with at least two "
                         f"axes, got shape {X.shape}")
    model = _model_from(model)
    if not isinstance(model, Network) and not hasattr(model, method):
        raise ValueError(f"nncore.dask.predict: {type(model).__name__} has no method "
                         f"{method!r}")
    if any(len(c) > 1 for c in X.chunks[1:]):
        X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    # the shape and dtype of one sample's prediction, from one zero sample
    sample = _predict_block(np.zeros((1,) + X.shape[1:], X.dtype), model, method, batch_size)
    out_shape, out_dtype = sample.shape[1:], sample.dtype
    client = _client()
    if client is not None:
        client.run(_one_thread)
        reference = client.scatter(model, broadcast=True, hash=False)
    else:
        reference = dask.delayed(model, pure=True)
    return da.map_blocks(
        _predict_block, X, reference, method, batch_size, client is not None,
        dtype=out_dtype,
        chunks=(X.chunks[0],) + tuple((d,) for d in out_shape),
        drop_axis=list(range(1, X.ndim)), new_axis=list(range(1, 1 + len(out_shape))),
        meta=np.empty((0,) * (1 + len(out_shape)), out_dtype))
