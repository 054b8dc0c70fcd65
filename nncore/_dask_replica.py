"""What a Dask worker runs for `nncore.dask.fit`: one replica of the
network per fit and worker process (loaded once from the model bytes the
client scattered), the partial gradient of the rows of a global batch the
worker holds (sync mode), and a run of local steps on its own rows (local
mode).  The tasks take the worker's row blocks as arguments: Dask hands
them over from the worker's memory, so no rows travel per step."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ._native.data import new_shuffle_state
from ._threads import get_num_threads, set_num_threads

_replicas: Dict[Tuple[str, int], object] = {}   # (fit key, group) -> Network
_lock = threading.Lock()
# seconds of the latest sync-mode gradients this process computed, for
# profiles (benchmarks/bench_parallel.py reads them with Client.run)
partial_seconds: deque = deque(maxlen=4096)


def flat_size(arrays: Sequence[np.ndarray]) -> int:
    return sum(a.size for a in arrays)


def flatten(arrays: Sequence[np.ndarray], dtype, scale: float = 1.0) -> np.ndarray:
    """The arrays, raveled and concatenated (times `scale`) into one vector."""
    out = np.empty(flat_size(arrays), dtype)
    start = 0
    for a in arrays:
        part = out[start:start + a.size]
        if scale != 1.0:
            np.multiply(a.reshape(-1), scale, out=part, casting="unsafe")
        else:
            np.copyto(part, a.reshape(-1), casting="unsafe")
        start += a.size
    return out


def unflatten_into(arrays: Sequence[np.ndarray], flat: np.ndarray) -> None:
    """Copy the vector `flat` (as `flatten` made it) into the arrays."""
    start = 0
    for a in arrays:
        np.copyto(a, flat[start:start + a.size].reshape(a.shape), casting="unsafe")
        start += a.size


def averaged_arrays(net) -> List[np.ndarray]:
    """What local mode averages: the parameters and the floating-point layer
    state (moving statistics), not generator states."""
    return [a for layer in net.layers for a in list(layer.params) + list(layer.state)
            if a.dtype.kind == "f"]


def generator_states(net) -> List[np.ndarray]:
    """The random generators' states of the layers (dropout, augmentation)."""
    return [a for layer in net.layers for a in layer.state if a.dtype.kind == "u"]


def forget(key: str) -> None:
    """Drop the replicas of fit `key` from this process."""
    with _lock:
        for k in [k for k in _replicas if k[0] == key]:
            del _replicas[k]


def replica(key: str, group: int, model: bytes):
    """This process's network for (fit `key`, `group`): loaded from `model`
    on first use, one nncore thread per Dask worker thread, and its random
    generators (dropout, augmentation) reseeded per group so that workers
    taking local steps do not draw the same masks (sync mode sets them each
    step)."""
    from .network import loads
    with _lock:
        net = _replicas.get((key, group))
        if net is None:
            if get_num_threads() != 1:
                set_num_threads(1)
            net = loads(model)
            for index, layer in enumerate(net.layers):
                for state in layer.state:
                    if state.dtype.kind == "u":
                        mixed = int(state[0]) ^ ((group + 1) * 0x9E3779B97F4A7C15
                                                 + index) % 2**64
                        np.copyto(state, new_shuffle_state(mixed % 2**63))
            _replicas[(key, group)] = net
        return net


def _rows(blocks: Sequence[np.ndarray], rows: Sequence[np.ndarray]) -> np.ndarray:
    """The listed rows of the blocks, block after block."""
    parts = [block[r] for block, r in zip(blocks, rows) if len(r)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def sync_partial(key: str, group: int, model: bytes, weights: np.ndarray,
                 generators: np.ndarray, rows: list, positions: np.ndarray, scale: float,
                 xs: list, ys: list):
    """(gradient, loss, generators) of the listed rows of this worker's
    blocks: the gradient of their mean loss, as one vector in `params`
    order, and the loss, times `scale` = rows / global batch, so that the
    partials of a global batch add up to its gradient and loss.  The
    replica's random generators start from `generators` (the client's, as
    one vector) and each row draws its dropout and augmentation numbers for
    its position in the global batch, as one process would; their states
    after the step come back as the third item."""
    from ._custom_loops import gradients_and_loss
    net = replica(key, group, model)
    unflatten_into(net.params, weights)
    states = generator_states(net)
    unflatten_into(states, generators)
    grads, loss = gradients_and_loss(net, _rows(xs, rows), _rows(ys, rows),
                                     draw_ids=positions)
    return (flatten(grads, net.dtype, scale), loss * scale,
            flatten(states, np.uint64) if states else generators)


class SyncReplica:
    """A Dask actor on the worker that holds a group of row blocks: it
    keeps the group's blocks and computes `sync_partial` of them when the
    client calls `partial` (actor calls go from the client to the worker
    directly, without the scheduler's round trip of a task)."""

    def __init__(self, key: str, group: int, model: bytes, xs: list, ys: list) -> None:
        self.key, self.group, self.model = key, group, model
        self.xs, self.ys = xs, ys
        replica(key, group, model)

    def partial(self, weights: np.ndarray, generators: np.ndarray, rows: list,
                positions: np.ndarray, scale: float):
        began = time.perf_counter()
        result = sync_partial(self.key, self.group, self.model, weights, generators, rows,
                              positions, scale, self.xs, self.ys)
        partial_seconds.append(time.perf_counter() - began)
        return result


def local_steps(key: str, group: int, model: bytes, weights: np.ndarray,
                rows: list, batch_size: int, learning_rate, xs: list, ys: list):
    """Local mode: load `weights` (parameters and float state), train on
    the listed rows in that order in steps of `batch_size` with the
    replica's own optimizer; (the new weights, rows trained, loss sum)."""
    net = replica(key, group, model)
    unflatten_into(averaged_arrays(net), weights)
    x, y = _rows(xs, rows), _rows(ys, rows)
    history = net.fit(x, y, epochs=1, batch_size=batch_size, shuffle=False, verbose=0,
                      learning_rate=learning_rate)
    return (flatten(averaged_arrays(net), weights.dtype), len(x),
            history.history["loss"][0] * len(x))
