"""Prediction over dask arrays, and data-parallel training, on a Dask cluster.

Needs dask (`pip install "nncore[dask]"`: dask[array] and distributed);
`import nncore` does not import this module.  `predict` gives a dask array
of predictions computed where the blocks are; `fit` trains a network on the
workers that hold the rows (synchronous data-parallel SGD, or local steps
with averaging).  `Network.fit`, `evaluate` and `predict` also accept dask
arrays and stream them one block at a time through this process.
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
from ._dask_fit import WorkersLost
from ._threads import get_num_threads, set_num_threads
from .network import Network, load

__all__ = ["predict", "fit", "WorkersLost"]


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


def fit(network, X, y, *, epochs: int = 1, batch_size: Optional[int] = None, client=None,
        mode: str = "sync", average_every: int = 8, validation_data=None, callbacks=None,
        verbose: int = 1, shuffle: bool = True, initial_epoch: int = 0,
        learning_rate: Optional[float] = None, checkpoint=None, timeout: float = 60.0):
    """Train `network` data-parallel on the workers of a Dask cluster.

    The rows stay on the workers (a dask array X is persisted block by
    block; a NumPy array is split into one block per worker and scattered)
    and each worker computes on the blocks it holds.  The client keeps the
    network, runs the epochs, and calls the callbacks, validation and
    progress output once per epoch, as `Network.fit` does.

    With ``mode="sync"`` every step is one step of synchronous SGD on a
    global batch of `batch_size` rows, chosen by the network's shuffle
    generator exactly as `Network.fit` chooses them: each worker computes
    the gradient of the rows of the batch it holds (weighted by their share
    of the batch), the client adds the partial gradients in a fixed order
    (by block), applies one optimizer step and sends the new weights to the
    workers.  The result equals `Network.fit` on the same rows, seed and
    batch size up to the order of floating-point sums (1e-10 relative in
    float64).  BatchNormalization is refused (the statistics of a global
    batch would need an exchange inside the forward).  Dropout and
    augmentation layers draw as in one process: the generators' states
    travel with the weights and each row draws for its position in the
    global batch, so they too give `Network.fit`'s numbers.

    With ``mode="local"`` each worker trains on its own rows with its own
    optimizer for `average_every` steps (its share of the global batch per
    step), then the client averages the weights and floating-point layer
    state (BatchNormalization's moving statistics), weighted by the rows
    each worker trained on.  That is not the same as single-process SGD
    (the replicas drift apart between averages); it exchanges weights
    `average_every` times less often, which pays for small batches and slow
    networks.

    A worker lost during a step is survived when Dask can recompute or
    move its rows (a dask array from its graph, NumPy blocks scattered again
    from the client): the step runs again on the workers left.  When the
    cluster cannot finish a step within `timeout` seconds the fit raises
    `WorkersLost` (a RuntimeError); the network then holds the weights of
    the last completed step (never a mix), and the `checkpoint` file, saved
    atomically at the end of every epoch, stays loadable.

    Parameters
    ----------
    network : Network
        The network to train (with a loss set by `use`); built from X's
        sample shape when it is not built yet.
    X : dask.array.Array or numpy.ndarray
        The training samples, batch first.
    y : dask.array.Array or numpy.ndarray
        The targets, one per sample.
    epochs : int, default 1
        The epoch to stop after.
    batch_size : int, optional
        The global batch: rows per step over all workers (default as in
        `Network.fit`).
    client : distributed.Client, optional
        The cluster's client (default: the current one).
    mode : {"sync", "local"}, default "sync"
        Synchronous data-parallel SGD, or local steps with weight averaging.
    average_every : int, default 8
        Local mode: the steps each worker takes between two averages.
    validation_data : tuple of (x_val, y_val), optional
        Scored on the client at the end of every epoch (``val_`` logs).
    callbacks : list of Callback, optional
        As in `Network.fit`; `on_batch_end` runs after every step (local
        mode: after every average).
    verbose : {0, 1, 2}, default 1
        Progress output, as in `Network.fit`.
    shuffle : bool, default True
        Draw a new order of the rows at every epoch from the network's
        shuffle generator (as `Network.fit` does).
    initial_epoch : int, default 0
        The epoch to start from.
    learning_rate : float, optional
        Replaces the optimizer's rate for this call.
    checkpoint : str or path-like, optional
        Where to save the network (`Network.save`, atomic) after every epoch.
    timeout : float, default 60
        Seconds a step may take, and a lost worker may take to be replaced,
        before the fit raises.

    Returns
    -------
    History
        The losses (and validation figures) of each epoch, also kept as
        `network.history`; training metrics are not computed.

    Raises
    ------
    ValueError
        If a layer cannot be trained this way (BatchNormalization in sync
        mode: the message names the layer), an argument is out of range, or
        there is no client.
    WorkersLost
        When the cluster cannot finish a step in time (a RuntimeError).
    FloatingPointError
        If a step's loss is not finite (the step is not applied).

    Examples
    --------
    >>> import numpy as np, nncore, nncore.dask
    >>> from distributed import Client, LocalCluster
    >>> cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
    ...                        dashboard_address=None)
    >>> client = Client(cluster)
    >>> x = np.random.default_rng(0).normal(size=(256, 4))
    >>> y = x.sum(axis=1, keepdims=True)
    >>> net = nncore.Network([nncore.Dense(1)], input_shape=(4,), seed=0).use("mse")
    >>> history = nncore.dask.fit(net, x, y, epochs=2, batch_size=32, client=client,
    ...                           verbose=0)
    >>> len(history.history["loss"])
    2
    >>> client.close(); cluster.close()
    """
    from ._dask_fit import fit as cluster_fit
    return cluster_fit(network, X, y, epochs=epochs, batch_size=batch_size, client=client,
                       mode=mode, average_every=average_every,
                       validation_data=validation_data, callbacks=callbacks, verbose=verbose,
                       shuffle=shuffle, initial_epoch=initial_epoch,
                       learning_rate=learning_rate, checkpoint=checkpoint, timeout=timeout)
