"""`nncore.dask.fit`: data-parallel training across the workers of a Dask
cluster (see that function).  The client holds the network and runs the
fit's epochs, callbacks, validation and progress (a `Trainer` without data);
the workers hold the rows (`_dask_rows`) and compute on them
(`_dask_replica`); Dask carries the tasks, the weights and the results."""
from __future__ import annotations

import math
import time
import uuid
from concurrent.futures import CancelledError
from typing import List, Optional

import numpy as np

from . import _dask_replica as replica
from ._dask_rows import ClusterRows
from ._data import check_positive_int, network_inputs, network_targets
from ._fit_config import FitConfig
from ._native.optim import apply_update
from ._parallel_run import DataParallelRun, new_trainer, train
from ._training import Trainer
from .errors import in_layer
from .layers.normalization import BatchNormalization

MODES = ("sync", "local")
ACTOR_POLL = 1.0    # seconds between checks that the worker of a pending call is alive


class WorkersLost(RuntimeError):
    """Raised by `nncore.dask.fit` when the cluster cannot finish a step:
    workers were lost and no others took their work within the fit's
    `timeout`, or a step waited longer than that.  The network then holds
    the weights of the last completed step.

    Examples
    --------
    >>> from nncore.dask import WorkersLost
    >>> issubclass(WorkersLost, RuntimeError)
    True
    """


def _retryable():
    """The errors of a step that a lost worker causes."""
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError
    return (KilledWorker, CancelledError, CommClosedError, OSError)


class ClusterFit(DataParallelRun):
    """One `nncore.dask.fit` call, the network's run guard held."""

    name = "nncore.dask.fit"

    def __init__(self, net, client, rows: ClusterRows, trainer: Trainer, mode: str,
                 average_every: int, checkpoint, timeout: float) -> None:
        super().__init__(net, trainer, rows.n, checkpoint)
        self.client, self.rows = client, rows
        self.mode, self.average_every = mode, average_every
        self.timeout = timeout
        self.stepwise = mode == "sync"
        self.key = uuid.uuid4().hex
        self.model = None
        self.actors: Optional[list] = None      # sync mode: a SyncReplica per group
        self.actor_futures: Optional[list] = None
        self.actor_layout: tuple = ()

    # ----------------------------------------------------------- transport
    def _share_model(self) -> None:
        data = self.net._dumps("nncore.dask.fit")
        self.model = self.client.scatter(data, broadcast=True, hash=False)

    def _make_actors(self, timeout: float) -> None:
        """A SyncReplica on the worker of each group, holding its blocks."""
        from distributed import wait
        futures = []
        for g, address in enumerate(self.rows.addresses):
            xs, ys = self.rows.futures_of(g)
            futures.append(self.client.submit(
                replica.SyncReplica, self.key, g, self.model, xs, ys, workers=[address],
                allow_other_workers=False, actor=True, pure=False))
        self.actor_futures = futures        # an actor lives while its future does
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait(futures, timeout=min(ACTOR_POLL, timeout))
                break
            except TimeoutError:
                self._check_alive(self.rows.addresses)
                if time.monotonic() >= deadline:
                    raise
        self.actors = [f.result() for f in futures]
        self.actor_layout = self._layout()

    def _actor_results(self, calls: list, left: float) -> list:
        """The results of actor calls ((worker address, call) pairs), waited
        for up to `left` seconds; OSError when the worker of a call leaves
        the cluster meanwhile (a call to a killed worker may otherwise wait
        for the whole timeout)."""
        deadline = time.monotonic() + left
        results = []
        for address, call in calls:
            while True:
                try:
                    results.append(call.result(timeout=min(ACTOR_POLL, left)))
                    break
                except TimeoutError:
                    self._check_alive([address])
                    if time.monotonic() >= deadline:
                        raise
        return results

    def _check_alive(self, addresses) -> None:
        """OSError (a lost worker: the step is made again) unless every one
        of these workers is in the cluster."""
        live = self.client.scheduler_info()["workers"]
        for address in addresses:
            if address not in live:
                raise OSError(f"worker {address} left the cluster")

    def _layout(self) -> tuple:
        """Which worker computes which blocks."""
        return tuple(self.rows.addresses), tuple(map(tuple, self.rows.groups))

    def _gather(self, submit) -> list:
        """The results of `submit()` (tasks, or calls of the actors it makes
        when there are none), in its order; after a lost worker they are made
        again on the repaired placement, for up to `timeout` seconds;
        WorkersLost after that."""
        from distributed import wait
        lost_since = None
        while True:
            left = self.timeout if lost_since is None else \
                max(0.0, lost_since + self.timeout - time.monotonic())
            futures = []
            try:
                if self.mode == "sync" and self.actors is None:
                    self._make_actors(left)
                futures = submit()
                if self.mode == "sync":
                    return self._actor_results(futures, left)
                wait(futures, timeout=left)
                return self.client.gather(futures)
            except TimeoutError as error:
                if self.mode != "sync":
                    self.client.cancel(futures)
                raise WorkersLost(self._lost_message(error)) from error
            except _retryable() as error:
                if self.mode != "sync":
                    self.client.cancel(futures)
                self.actors = None
                now = time.monotonic()
                lost_since = now if lost_since is None else lost_since
                if now - lost_since >= self.timeout:
                    raise WorkersLost(self._lost_message(error)) from error
                try:
                    self.rows.repair()
                    if self.model.status != "finished":
                        self._share_model()
                except TimeoutError as error:
                    raise WorkersLost(self._lost_message(error)) from error
                except _retryable() + (RuntimeError, KeyError):
                    time.sleep(0.5)     # (KeyError: a worker left between listing and use)

    def _lost_message(self, error) -> str:
        return (f"nncore.dask.fit: the cluster did not finish a step within {self.timeout:g} s "
                f"({type(error).__name__}: {error}); the network holds the weights of the "
                f"last completed step")

    # ---------------------------------------------------------------- run
    def run(self) -> None:
        self._share_model()
        super().run()

    def epoch(self, e: int, order: np.ndarray) -> None:
        if self.mode == "sync":
            self._sync_epoch(e, order)
        else:
            self._local_epoch(e, order)

    def finish(self) -> None:
        self.actors = self.actor_futures = None
        try:
            self.client.run(replica.forget, self.key)
        except Exception:            # the cluster may be gone: nothing to forget
            pass

    def _sync_epoch(self, e: int, order: np.ndarray) -> None:
        net, trainer = self.net, self.trainer
        params = net.params
        optimizer = trainer.optimizer
        self.rows.place()
        if self.actor_layout != self._layout():
            self.actors = None      # made again for this placement at the first step
        states = replica.generator_states(net)
        for k in range(self.per_epoch):
            batch = order[k * self.batch:(k + 1) * self.batch]

            def submit(batch=batch):
                weights = replica.flatten(params, net.dtype)
                generators = replica.flatten(states, np.uint64)
                positions = self.rows.group_positions(batch)
                return [(self.rows.addresses[g],
                         self.actors[g].partial(weights, generators, rows, positions[g],
                                                len(positions[g]) / len(batch)))
                        for g, rows in enumerate(self.rows.group_rows(batch))
                        if rows is not None]

            partials = self._gather(submit)
            total = partials[0][0]
            for grad, _, _ in partials[1:]:
                total += grad
            loss = sum(part[1] for part in partials)
            if not self.account(e, k, len(batch), loss):
                return
            rate = float(optimizer.learning_rates(optimizer.iterations, 1, trainer.rate)[0])
            grads = _views(total, params)
            apply_update(optimizer.updater, params, grads, rate)
            replica.unflatten_into(states, partials[0][2])
            self.batch_end(e, k, len(batch), loss)
            if net.stop_training:
                return

    def _local_epoch(self, e: int, order: np.ndarray) -> None:
        net, trainer, rows = self.net, self.trainer, self.rows
        rows.place()
        groups = rows.group_of_block[rows.block_of[order]]
        mine = [order[groups == g] for g in range(len(rows.groups))]
        batches = [max(1, round(self.batch * len(m) / rows.n)) for m in mine]
        span = [b * self.average_every for b in batches]
        rounds = max(math.ceil(len(m) / s) for m, s in zip(mine, span))
        averaged = replica.averaged_arrays(net)
        rate = trainer.learning_rate
        rate = None if callable(rate) else float(rate)
        for r in range(rounds):
            def submit(r=r):
                weights = self.client.scatter(replica.flatten(averaged, net.dtype),
                                              broadcast=True, hash=False)
                futures = []
                for g in range(len(mine)):
                    chosen = mine[g][r * span[g]:(r + 1) * span[g]]
                    if not len(chosen):
                        continue
                    # the group's rows as the repaired placement splits them
                    shares = rows.group_rows(chosen)
                    for h, share in enumerate(shares):
                        if share is None:
                            continue
                        xs, ys = rows.futures_of(h)
                        futures.append(self.client.submit(
                            replica.local_steps, self.key, g, self.model, weights, share,
                            batches[g], rate, xs, ys, workers=[rows.addresses[h]],
                            allow_other_workers=True, pure=False))
                return futures

            results = self._gather(submit)
            seen = sum(n for _, n, _ in results)
            loss = sum(s for _, _, s in results)
            if not self.account(e, r, seen, loss / seen):
                return
            total = np.zeros_like(results[0][0], dtype=np.float64)
            for flat, n, _ in results:
                total += flat * (n / seen)
            replica.unflatten_into(averaged, total)
            self.batch_end(e, r, seen, loss / seen)
            if net.stop_training:
                return


def _views(flat: np.ndarray, like: List[np.ndarray]) -> List[np.ndarray]:
    out, start = [], 0
    for a in like:
        out.append(flat[start:start + a.size].reshape(a.shape))
        start += a.size
    return out


def _checked(net, x, y, mode, average_every, timeout):
    from .network import Network
    if not isinstance(net, Network):
        raise TypeError(f"nncore.dask.fit: network must be a nncore.Network, got "
                        f"{type(net).__name__}")
    if net.loss is None:
        raise RuntimeError("nncore.dask.fit: set a loss with use(...) before fit")
    if mode not in MODES:
        raise ValueError(f"nncore.dask.fit: mode must be 'sync' or 'local', got {mode!r}")
    average_every = check_positive_int(average_every, "average_every")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not 0 < timeout < float("inf"):
        raise ValueError(f"nncore.dask.fit: timeout must be a positive number of seconds, "
                         f"got {timeout!r}")
    if y is None:
        raise ValueError("nncore.dask.fit: y is missing; pass the targets")
    if getattr(x, "ndim", 0) < 2:
        raise ValueError(f"nncore.dask.fit: X must be an array of samples, batch first, got "
                         f"{type(x).__name__} of shape {getattr(x, 'shape', None)}")
    if not net.built:
        net.build(tuple(x.shape[1:]))
    # the shapes and dtypes of the samples, checked once on one row
    network_targets(net, np.asarray(y[:1]), 1)
    network_inputs(net, np.asarray(x[:1]))
    if mode == "sync":
        for index, layer in enumerate(net.layers):
            if isinstance(layer, BatchNormalization):
                raise ValueError(in_layer(index, layer, (
                    "nncore.dask.fit mode='sync' cannot normalize with the statistics of "
                    "the whole global batch (its rows are on several workers); use "
                    "mode='local' (statistics of each worker's batches), or a network "
                    "without BatchNormalization")))
    return average_every, float(timeout)


def fit(network, x, y, *, epochs: int = 1, batch_size: Optional[int] = None, client=None,
        mode: str = "sync", average_every: int = 8, validation_data=None,
        callbacks: Optional[list] = None, verbose: int = 1, shuffle: bool = True,
        initial_epoch: int = 0, learning_rate: Optional[float] = None, checkpoint=None,
        timeout: float = 60.0):
    """The body of `nncore.dask.fit` (documented there)."""
    average_every, timeout = _checked(network, x, y, mode, average_every, timeout)
    config = FitConfig(epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                       shuffle=shuffle, verbose=verbose, callbacks=callbacks,
                       initial_epoch=initial_epoch, learning_rate=learning_rate)
    if client is None:
        from distributed import default_client
        try:
            client = default_client()
        except ValueError:
            raise ValueError("nncore.dask.fit: no Dask client; pass client= or create a "
                             "distributed.Client first") from None
    rows = ClusterRows(client, x, y)
    with network.guard.writing("nncore.dask.fit"):
        trainer = new_trainer(network, config, rows.n)
        return train(ClusterFit(network, client, rows, trainer, mode, average_every,
                                checkpoint, timeout))
