"""`nncore.mpi.fit`: synchronous data-parallel training over the ranks of
an MPI job (see that function).  Every rank runs the same fit on a replica
of the network: it computes the gradient of the rows of each global batch
it holds, the ranks exchange their partial gradients (MPI Allgather) and
add them in rank order, and each applies the same optimizer step, so the
replicas stay equal without sending weights."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ._custom_loops import checked_gradients
from ._dask_replica import flatten, generator_states, unflatten_into
from ._data import network_inputs, network_targets
from ._fit_config import FitConfig
from ._native.optim import apply_update
from ._parallel_run import DataParallelRun, new_trainer, train
from ._threads import threads
from .errors import in_layer
from .layers.normalization import BatchNormalization


class RankFit(DataParallelRun):
    """This rank's part of one `nncore.mpi.fit` call, the guard held."""

    name = "nncore.mpi.fit"

    def __init__(self, net, comm, x, y, first: int, n: int, shared: bool, trainer,
                 checkpoint) -> None:
        super().__init__(net, trainer, n, checkpoint)
        self.comm, self.x, self.y = comm, x, y
        self.first, self.shared = first, shared
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.flat_size = sum(p.size for p in net.params)
        self.partials = np.empty((self.size, self.flat_size), net.dtype)  # row r: rank r's
        self.total = np.empty(self.flat_size, net.dtype)

    def save_checkpoint(self) -> None:
        if self.rank == 0:
            super().save_checkpoint()

    def _mine(self, batch: np.ndarray):
        """(positions in the batch, rows of this rank's x) of the rows of
        the global batch this rank computes."""
        if self.shared:         # an even split of the batch's positions
            lo = self.rank * len(batch) // self.size
            hi = (self.rank + 1) * len(batch) // self.size
            positions = np.arange(lo, hi, dtype=np.int64)
            return positions, batch[lo:hi]
        local = batch - self.first
        positions = np.flatnonzero((local >= 0) & (local < len(self.x))).astype(np.int64)
        return positions, local[positions]

    def epoch(self, e: int, order: np.ndarray) -> None:
        from mpi4py import MPI
        net, trainer = self.net, self.trainer
        params, optimizer = net.params, trainer.optimizer
        states = generator_states(net)
        for k in range(self.per_epoch):
            batch = order[k * self.batch:(k + 1) * self.batch]
            positions, rows = self._mine(batch)
            mine = self.partials[self.rank]
            loss, drawn = 0.0, None
            if len(rows):
                grads, loss = checked_gradients(net, self.x[rows], self.y[rows],
                                                draw_ids=positions)
                share = len(rows) / len(batch)
                mine[:] = flatten(grads, net.dtype, share)
                loss *= share
                drawn = flatten(states, np.uint64) if states else None
            else:
                mine[:] = 0
            self.comm.Allgather(MPI.IN_PLACE, self.partials)    # this rank's row is `mine`
            shared = self.comm.allgather((loss, drawn))
            total = self.total
            np.copyto(total, self.partials[0])
            for part in self.partials[1:]:
                total += part
            loss = sum(value for value, _ in shared)
            if states:           # every rank's generators as the first rank with rows left them
                unflatten_into(states, next(d for _, d in shared if d is not None))
            if not self.account(e, k, len(batch), loss):
                return
            rate = float(optimizer.learning_rates(optimizer.iterations, 1, trainer.rate)[0])
            start, grads = 0, []
            for p in params:
                grads.append(total[start:start + p.size].reshape(p.shape))
                start += p.size
            apply_update(optimizer.updater, params, grads, rate)
            self.batch_end(e, k, len(batch), loss)
            if net.stop_training:
                return


def _checked(net, comm, x, y, shared):
    from .network import Network
    if not isinstance(net, Network):
        raise TypeError(f"nncore.mpi.fit: network must be a nncore.Network, got "
                        f"{type(net).__name__}")
    if net.loss is None:
        raise RuntimeError("nncore.mpi.fit: set a loss with use(...) before fit")
    if y is None:
        raise ValueError("nncore.mpi.fit: y is missing; pass the targets")
    x = network_inputs(net, x)
    y = network_targets(net, y, x.shape[0])
    for index, layer in enumerate(net.layers):
        if isinstance(layer, BatchNormalization):
            raise ValueError(in_layer(index, layer, (
                "nncore.mpi.fit cannot normalize with the statistics of the whole global "
                "batch (its rows are on several ranks); use a network without "
                "BatchNormalization")))
    counts = comm.allgather(len(x))
    if shared and len(set(counts)) != 1:
        raise ValueError(f"nncore.mpi.fit: shared=True needs the same rows on every rank, "
                         f"the ranks passed {counts} rows")
    if not shared and min(counts) == 0 and sum(counts) == 0:
        raise ValueError("nncore.mpi.fit: no rank passed any rows")
    first = 0 if shared else sum(counts[:comm.Get_rank()])
    n = counts[0] if shared else sum(counts)
    return x, y, first, n


def fit(network, x, y, *, epochs: int = 1, batch_size: Optional[int] = None, comm=None,
        shared: bool = False, validation_data=None, callbacks: Optional[list] = None,
        verbose: int = 1, shuffle: bool = True, initial_epoch: int = 0,
        learning_rate: Optional[float] = None, checkpoint=None,
        threads_per_rank: Optional[int] = None):
    """The body of `nncore.mpi.fit` (documented there)."""
    if comm is None:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    if not network.built:
        network.build(tuple(np.shape(x)[1:]))
    x, y, first, n = _checked(network, comm, x, y, shared)
    if threads_per_rank is None:
        from mpi4py import MPI
        local = comm.Split_type(MPI.COMM_TYPE_SHARED)
        threads_per_rank = max(1, (os.cpu_count() or 1) // local.Get_size())
        local.Free()
    config = FitConfig(epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                       shuffle=shuffle, verbose=verbose if comm.Get_rank() == 0 else 0,
                       callbacks=callbacks, initial_epoch=initial_epoch,
                       learning_rate=learning_rate)
    with network.guard.writing("nncore.mpi.fit"), threads(threads_per_rank):
        trainer = new_trainer(network, config, n)
        return train(RankFit(network, comm, x, y, first, n, shared, trainer, checkpoint))
