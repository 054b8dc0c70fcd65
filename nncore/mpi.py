"""Data-parallel training over the ranks of an MPI job.

Needs mpi4py and an MPI library (`pip install "nncore[mpi]"` installs
mpi4py and MPICH's wheel on Linux; any MPI that mpi4py was built against
works); `import nncore` does not import this module.  Start the same script
on every rank with ``mpiexec -n N python script.py``; each rank calls `fit`
with its rows.
"""
from __future__ import annotations

from typing import Optional

try:
    import mpi4py  # noqa: F401
except ImportError as error:                                   # pragma: no cover
    raise ImportError("nncore.mpi needs mpi4py and an MPI library: "
                      "pip install 'nncore[mpi]'") from error

__all__ = ["fit"]


def fit(network, x, y, *, epochs: int = 1, batch_size: Optional[int] = None, comm=None,
        shared: bool = False, validation_data=None, callbacks=None, verbose: int = 1,
        shuffle: bool = True, initial_epoch: int = 0, learning_rate: Optional[float] = None,
        checkpoint=None, threads_per_rank: Optional[int] = None):
    """Train `network` data-parallel over the ranks of an MPI communicator.

    Every rank calls `fit` on the same network (built the same way with the
    same seed) with its own rows.  The global data is the ranks' rows one
    after another in rank order (or, with ``shared=True``, the same rows on
    every rank).  Each step is one step of synchronous SGD on a global
    batch of `batch_size` rows, drawn by the network's shuffle generator
    exactly as `Network.fit` draws them: each rank computes the gradient of
    the rows of the batch it holds (with ``shared=True``, an even share of
    the batch's positions), scaled by their share of the batch; the ranks
    exchange the partial gradients (one MPI Allgather) and every rank adds
    them in rank order and applies the same optimizer step, so the
    replicas stay equal without sending weights.  Dropout and augmentation
    layers draw for each row's position in the global batch.  The result
    equals `Network.fit` on the concatenated rows with the same seed and
    batch size up to the order of floating-point sums (1e-10 relative in
    float64, tested).

    Callbacks and validation run on every rank, with the same weights and
    the same figures; progress output comes from rank 0 only, and so does
    the `checkpoint` file.  Pass callbacks that write files (ModelCheckpoint,
    TensorBoard, CSVLogger) on rank 0 only.  An MPI job ends when one of its
    ranks dies: there is no recovery within a fit (resume from the
    checkpoint).

    Parameters
    ----------
    network : Network
        The network to train (with a loss set by `use`); built from x's
        sample shape when it is not built yet.  The same on every rank.
    x : array_like
        This rank's training samples, batch first.
    y : array_like
        Their targets.
    epochs : int, default 1
        The epoch to stop after.
    batch_size : int, optional
        The global batch: rows per step over all ranks (default as in
        `Network.fit`).
    comm : mpi4py.MPI.Comm, optional
        The ranks that train (default ``MPI.COMM_WORLD``).
    shared : bool, default False
        Every rank passes the same rows (a file each rank maps, say); each
        rank computes an even share of every batch.
    validation_data : tuple of (x_val, y_val), optional
        Scored on every rank at the end of every epoch (``val_`` logs).
    callbacks : list of Callback, optional
        As in `Network.fit`, on every rank.
    verbose : {0, 1, 2}, default 1
        Progress output of rank 0, as in `Network.fit`.
    shuffle : bool, default True
        Draw a new order of the rows at every epoch from the network's
        shuffle generator (as `Network.fit` does).
    initial_epoch : int, default 0
        The epoch to start from.
    learning_rate : float, optional
        Replaces the optimizer's rate for this call.
    checkpoint : str or path-like, optional
        Where rank 0 saves the network (`Network.save`, atomic) after every
        epoch.
    threads_per_rank : int, optional
        nncore threads of each rank (default: the machine's cores divided
        by the ranks on the machine).

    Returns
    -------
    History
        The losses (and validation figures) of each epoch, also kept as
        `network.history`; training metrics are not computed.

    Raises
    ------
    ValueError
        If a layer cannot be trained this way (BatchNormalization: the
        message names the layer), or the ranks' rows do not fit together.

    Examples
    --------
    A script started with ``mpiexec -n 2 python train.py``; run alone it is
    a job of one rank:

    >>> import numpy as np, nncore, nncore.mpi
    >>> from mpi4py import MPI
    >>> rank, size = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    >>> x = np.random.default_rng(0).normal(size=(256, 4))
    >>> y = x.sum(axis=1, keepdims=True)
    >>> mine = slice(rank * 256 // size, (rank + 1) * 256 // size)
    >>> net = nncore.Network([nncore.Dense(1)], input_shape=(4,), seed=0).use("mse")
    >>> history = nncore.mpi.fit(net, x[mine], y[mine], epochs=2, batch_size=32,
    ...                          verbose=0)
    >>> len(history.history["loss"])
    2
    """
    from ._mpi_fit import fit as rank_fit
    return rank_fit(network, x, y, epochs=epochs, batch_size=batch_size, comm=comm,
                    shared=shared, validation_data=validation_data, callbacks=callbacks,
                    verbose=verbose, shuffle=shuffle, initial_epoch=initial_epoch,
                    learning_rate=learning_rate, checkpoint=checkpoint,
                    threads_per_rank=threads_per_rank)
