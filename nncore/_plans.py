"""The native plans of a network, and how many BLAS threads they get.

A network caches one inference plan per thread (threads predicting at once
use their own buffers) and one training plan per optimizer updater.  A plan
owns every buffer a run writes; the layers' op records are only read."""
from __future__ import annotations

import os
import threading
from typing import Optional

import numpy as np

from . import _budget
from ._lowering import lower, ops_of
from ._native.plan import Plan
from .errors import in_layer
from ._threads import get_num_threads, max_workers

# batch_size * parameter count below which BLAS runs single-threaded
SMALL_WORK = 1 << 24
# predict splits a call into chunks of equal size (to within a sample) of at
# most MAX_CHUNK samples (large enough that BLAS's packing of a dense layer's
# weights is paid once for many samples), fewer when the activations of a
# chunk would take more than CHUNK_BYTES.  While the chunks keep MIN_CHUNK
# samples or more, their number is a multiple of the core count, so that
# every core gets the same share.  The chunks depend on the call and the
# machine, never on set_num_threads, so the results do not either.
CHUNK_BYTES = 1 << 23
MAX_CHUNK = 256
MIN_CHUNK = 32
CORES = os.cpu_count() or 1
# A training batch runs in at most TRAINING_SHARDS shards (see Plan.shard_count)
# of at least 16 samples and SHARD_WORK multiply-adds (about 3x those of the
# forward): a smaller shard spends more on BLAS packing each layer's weights
# and on adding its gradients than its rows take (measured: the MLP
# 784-256-128-10 at batch 32 in 2 shards of 16 trained 0.6x as fast on one
# thread as in one piece).
TRAINING_SHARDS = min(CORES, 64)
MIN_SHARD_ROWS = 16
SHARD_WORK = 1 << 25


def forward_multiply_adds(layers) -> int:
    """Multiply-adds per sample of the layers' forward, roughly: each
    layer's largest weight array times the positions of its output that it
    is applied at (1 for a Dense layer on vectors, OH x OW for a Conv2D)."""
    total = 0
    for layer in layers:
        inner = getattr(layer, "layers", None)      # a Residual block: its layers'
        if inner is not None:
            total += forward_multiply_adds(inner)
            continue
        params = getattr(layer, "params", None) or []
        if params:
            positions = np.prod((tuple(layer.output_shape) or (1,))[:-1], dtype=np.int64)
            total += max(p.size for p in params) * int(positions)
    return total


def min_shard_rows(layers) -> int:
    """The fewest samples a training shard of these layers has."""
    work = 3 * forward_multiply_adds(layers)
    return max(MIN_SHARD_ROWS, -(-SHARD_WORK // max(work, 1)))


def native_ops(layers) -> Optional[list]:
    """The ops of every layer in order, or None when a layer runs in Python."""
    ops = []
    for layer in layers:
        layer_ops = layer.native_ops()
        if layer_ops is None:
            return None
        ops.extend(layer_ops)
    return ops


def new_plan(ops: list, dtype) -> Plan:
    """A plan of these ops whose buffers are checked against the memory
    budget before they are allocated."""
    return Plan(ops, dtype, _budget.check)


def checked_plan(net, plan: Plan) -> Plan:
    """`plan` after checking that it reads whole samples of the network's
    input (its first layer was built for this input shape)."""
    expected = int(np.prod(net.input_shape, dtype=np.int64))
    if plan.in_size != expected:
        raise RuntimeError(in_layer(0, net.layers[0], f"built for {plan.in_size} input "
                                    f"values per sample, the network's input shape "
                                    f"{net.input_shape} has {expected}"))
    return plan


def fused_ops(layers, training: bool = False) -> Optional[list]:
    """The ops that run the layers in a plan, as the lowering pass (see
    _lowering) makes them; None when a layer runs in Python."""
    steps = lower(layers, training)
    return None if steps is None else ops_of(steps)


class NetworkPlans:
    """The plans of one built network (see the module docstring)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._train_plan: Optional[Plan] = None
        self._train_for: tuple = (None, None)      # (updater, loss) it was set up with
        self._param_count: Optional[int] = None
        self._schedules: dict = {}     # predict_schedule's answers by call
        self.used = False      # a plan was asked for: the layers are final

    def predict_plan(self, net) -> Optional[Plan]:
        """This thread's inference plan, or None for a network with Python layers."""
        self.used = True
        local = self._local
        if not hasattr(local, "plan"):
            steps = lower(net.layers, training=False)
            local.plan = None if steps is None else checked_plan(net, new_plan(ops_of(steps),
                                                                              net.dtype))
            # weights folded for this plan: folded again when their sources change
            local.folds = [] if steps is None else [f for s in steps for f in s.folds]
        for fold in local.folds:
            fold.refresh()
        return local.plan

    def training_plan(self, net, loss_op, updater) -> Optional[Plan]:
        """The plan that trains `net` with this native loss op and updater
        (cached per updater), or None when a layer or the loss is Python."""
        self.used = True
        if self._train_for[0] is not updater or self._train_for[1] is not net.loss:
            ops = fused_ops(net.layers, training=True)
            plan = None
            if ops is not None and loss_op is not None:
                plan = checked_plan(net, new_plan(ops, net.dtype))
                plan.set_training(loss_op, updater, net.params, net.penalties)
                plan.max_shards = TRAINING_SHARDS
                plan.min_shard_rows = min_shard_rows(net.layers)
            self._train_plan, self._train_for = plan, (updater, net.loss)
        return self._train_plan

    def forget_training(self) -> None:
        """Drop the training plan (the loss or optimizer changed)."""
        self._train_plan, self._train_for = None, (None, None)

    def predict_schedule(self, net, n: int, chunk: Optional[int] = None) -> tuple:
        """(chunk, workers, BLAS threads) for predicting n samples in chunks
        of `chunk` samples (None: the default chunks).  Whole chunks go to
        separate worker threads, each with single-threaded BLAS; a single
        chunk runs on the calling thread, BLAS as for training.  Where fewer
        workers are allowed (a forked child, see _threads.max_workers), the
        chunks still run single-threaded BLAS, so the results stay the same."""
        key = (n, chunk, get_num_threads(), max_workers())
        schedule = self._schedules.get(key)
        if schedule is None:
            if chunk is None:
                chunk = self._default_chunk(net, n)
            workers = min(key[2], -(-n // chunk))
            if workers > 1:
                schedule = (chunk, min(workers, key[3]), 1)
            else:
                schedule = (chunk, 1, self.blas_threads(net, min(n, chunk)))
            if len(self._schedules) >= 64:
                self._schedules.clear()
            self._schedules[key] = schedule
        return schedule

    def _default_chunk(self, net, n: int) -> int:
        plan = self.predict_plan(net)
        limit = MAX_CHUNK if plan is None else CHUNK_BYTES // plan.sample_bytes
        chunks = -(-n // max(1, min(MAX_CHUNK, limit)))
        balanced = -(-chunks // CORES) * CORES
        if n // balanced >= MIN_CHUNK:
            chunks = balanced
        else:
            chunks = max(chunks, min(CORES, n // MIN_CHUNK))
        return -(-n // chunks)

    def training_threads(self, net, plan: Plan, batch_size: int) -> int:
        """Let `plan` run the shards of a training batch on every thread
        allowed; the BLAS threads for it: one inside parallel shards, else as
        blas_threads says."""
        workers = min(max_workers(), plan.shard_count(batch_size))
        plan.training_workers = workers
        return 1 if workers > 1 else self.blas_threads(net, batch_size)

    def blas_threads(self, net, batch_size: int) -> int:
        """One BLAS thread for small batches, where threads cost more than
        they bring; all of them for large ones."""
        if self._param_count is None:
            self._param_count = sum(p.size for p in net.params)
        small = batch_size * self._param_count < SMALL_WORK
        return 1 if small else get_num_threads()
