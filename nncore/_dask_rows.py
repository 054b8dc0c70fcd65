"""The training rows of `nncore.dask.fit` on the cluster: X and y in row
blocks held in the workers' memory (a dask array persisted, a NumPy array
scattered), which worker computes on which blocks (a block stays on a
worker that holds it), and the repair after a worker is lost (blocks
recomputed by Dask from their graph, or scattered again from the client's
NumPy arrays)."""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from ._adapters import is_dask_array

WORKER_WAIT = 10.0      # seconds to wait for a worker when the cluster has none


class ClusterRows:
    """X (n, ...) and y (n, ...) in row blocks on the cluster of `client`."""

    def __init__(self, client, x, y) -> None:
        self.client = client
        if len(x) != len(y):
            raise ValueError(f"nncore.dask.fit: X has {len(x)} samples and y {len(y)}")
        if len(x) == 0:
            raise ValueError("nncore.dask.fit: X has no samples")
        self.local_x: Optional[List[np.ndarray]] = None     # the blocks, when X is NumPy
        self.local_y: Optional[List[np.ndarray]] = None
        if is_dask_array(x):
            self._persist(x, y)
        else:
            if is_dask_array(y):
                y = y.compute()
            self._scatter(np.asarray(x), np.asarray(y))
        self.lengths = np.array([len(b) for b in self.block_rows], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.n = int(self.offsets[-1])
        self.groups: List[List[int]] = []     # blocks of each worker, by first block
        self.addresses: List[str] = []        # the worker of each group
        self.block_of = np.repeat(np.arange(len(self.lengths)), self.lengths)
        self.group_of_block = np.zeros(len(self.lengths), np.int64)
        self.place()

    # ------------------------------------------------------------ the data
    def _persist(self, x, y) -> None:
        import dask.array as da
        from distributed import futures_of
        if any(len(c) > 1 for c in x.chunks[1:]):
            x = x.rechunk({axis: -1 for axis in range(1, x.ndim)})
        if is_dask_array(y):
            y = y.rechunk((x.chunks[0],) + tuple((d,) for d in y.shape[1:]))
        else:
            y = np.asarray(y)
            y = da.from_array(y, chunks=(x.chunks[0],) + y.shape[1:])
        x, y = self.client.persist([x, y])
        futures = {f.key: f for f in futures_of(x) + futures_of(y)}
        self.x_blocks = [futures[k] for k in _row_keys(x)]
        self.y_blocks = [futures[k] for k in _row_keys(y)]
        self.block_rows = [range(c) for c in x.chunks[0]]
        self.arrays = (x, y)        # keeps the persisted collections alive

    def _scatter(self, x: np.ndarray, y: np.ndarray) -> None:
        workers = self.live_workers()
        count = min(len(workers), len(x))
        edges = np.linspace(0, len(x), count + 1).astype(np.int64)
        self.local_x = [x[a:b] for a, b in zip(edges[:-1], edges[1:])]
        self.local_y = [y[a:b] for a, b in zip(edges[:-1], edges[1:])]
        self.block_rows = [range(len(b)) for b in self.local_x]
        self.x_blocks, self.y_blocks = [], []
        for i, (xb, yb) in enumerate(zip(self.local_x, self.local_y)):
            where = [workers[i % len(workers)]]
            self.x_blocks.append(self.client.scatter(xb, workers=where, hash=False))
            self.y_blocks.append(self.client.scatter(yb, workers=where, hash=False))

    def live_workers(self) -> List[str]:
        """The workers the scheduler knows now, waiting up to WORKER_WAIT
        seconds for one when it knows none (a worker being replaced)."""
        workers = sorted(self.client.scheduler_info()["workers"])
        if not workers:
            try:
                self.client.wait_for_workers(1, timeout=WORKER_WAIT)
            except TimeoutError:
                pass
            workers = sorted(self.client.scheduler_info()["workers"])
        if not workers:
            raise RuntimeError("nncore.dask.fit: the cluster has no workers")
        return workers

    # ------------------------------------------------------- who computes
    def place(self) -> None:
        """Give each block to a live worker that holds it (the one with the
        fewest rows so far; a lost block to the least loaded worker), and
        order the groups of blocks by their first block."""
        workers = self.live_workers()
        holders = self.client.who_has(self.x_blocks)
        load = {w: 0 for w in workers}
        owner = {}
        for b in sorted(range(len(self.lengths)), key=lambda b: -self.lengths[b]):
            held = [w for w in holders.get(self.x_blocks[b].key, ()) if w in load]
            chosen = min(held or workers, key=lambda w: (load[w], w))
            owner[b] = chosen
            load[chosen] += int(self.lengths[b])
        groups: dict = {}
        for b in range(len(self.lengths)):
            groups.setdefault(owner[b], []).append(b)
        ordered = sorted(groups.items(), key=lambda item: item[1][0])
        self.addresses = [w for w, _ in ordered]
        self.groups = [blocks for _, blocks in ordered]
        for g, blocks in enumerate(self.groups):
            self.group_of_block[blocks] = g

    def repair(self) -> None:
        """After a lost worker: scatter again the NumPy blocks whose only
        copy it held (Dask recomputes persisted dask blocks itself), then
        place the blocks on the live workers."""
        if self.local_x is not None:
            for b, (xf, yf) in enumerate(zip(self.x_blocks, self.y_blocks)):
                if xf.status != "finished" or yf.status != "finished":
                    where = [min(self.live_workers())]
                    self.x_blocks[b] = self.client.scatter(self.local_x[b], workers=where,
                                                           hash=False)
                    self.y_blocks[b] = self.client.scatter(self.local_y[b], workers=where,
                                                           hash=False)
        self.place()

    # ------------------------------------------------------ rows of a step
    def group_rows(self, rows: np.ndarray) -> List[Optional[list]]:
        """For each group: the rows (global indices, in the given order) that
        its blocks hold, as one index array per block of the group (local
        to the block), or None when it holds none of them."""
        blocks = self.block_of[rows]
        local = rows - self.offsets[blocks]
        groups = self.group_of_block[blocks]
        out: List[Optional[list]] = []
        for g, members in enumerate(self.groups):
            mine = groups == g
            if not mine.any():
                out.append(None)
                continue
            out.append([local[mine & (blocks == b)] for b in members])
        return out

    def group_positions(self, rows: np.ndarray) -> List[Optional[np.ndarray]]:
        """For each group: the positions in `rows` of the rows it holds, in
        the order group_rows lists them (block after block), or None."""
        blocks = self.block_of[rows]
        groups = self.group_of_block[blocks]
        out: List[Optional[np.ndarray]] = []
        for g, members in enumerate(self.groups):
            mine = groups == g
            if not mine.any():
                out.append(None)
                continue
            out.append(np.concatenate([np.flatnonzero(mine & (blocks == b))
                                       for b in members]).astype(np.int64))
        return out

    def futures_of(self, g: int):
        members = self.groups[g]
        return [self.x_blocks[b] for b in members], [self.y_blocks[b] for b in members]


def _row_keys(array) -> list:
    """The keys of a dask array's blocks along the rows (one block across
    the other axes)."""
    keys = array.__dask_keys__()
    while isinstance(keys[0], list) and isinstance(keys[0][0], list):
        keys = [k[0] for k in keys]
    return [k[0] if isinstance(k, list) else k for k in keys]
