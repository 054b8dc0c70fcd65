"""Divergence keeps the last good weights: `LastGood` holds two copies of a
network's weights (params and layer state) and optimizer state, taken at
the start of runs of training steps, and puts the newest one whose steps
gave a finite loss back when a loss or a weight becomes NaN or inf.

Copies are taken at most once per `SPACING` times the time one copy takes,
so they cost at most about 1/SPACING of the training time; a rollback
therefore returns to the start of the latest run of steps that began
finite (with one-step runs -- per-batch callbacks such as TerminateOnNaN,
or training metrics -- and small networks, usually the last finite step)."""
from __future__ import annotations

import time
from typing import List, Optional

import numpy as np

from ._native.data import all_finite

SPACING = 50


class LastGood:
    def __init__(self, net, optimizer) -> None:
        self.weights = [a for layer in net.layers for a in list(layer.params) + list(layer.state)]
        self.optimizer = optimizer
        # (step, weights, optimizer state); the buffers are allocated once per fit
        self.buffers = [[np.empty_like(a) for a in self.weights] for _ in range(2)]
        self.copies: List[Optional[tuple]] = [None, None]
        self.newest = 1
        self.cost = 0.0
        self.taken_at = -float("inf")

    def take(self, step: int, force: bool = False) -> None:
        """Copy the weights and optimizer state before `step` (0-based over
        this fit), unless a copy was taken too recently.  Weights that are no
        longer finite are not copied (the rollback will see them)."""
        now = time.perf_counter()
        if not force and now - self.taken_at < SPACING * self.cost:
            return
        if not self.finite():
            return
        slot = 1 - self.newest
        weights = self.buffers[slot]
        for copy, array in zip(weights, self.weights):
            np.copyto(copy, array)
        self.copies[slot] = (step, weights, self.optimizer.get_state())
        self.newest = slot
        self.taken_at = time.perf_counter()
        self.cost = self.taken_at - now

    def finite(self) -> bool:
        return all(_finite(a) for a in self.weights)

    def restore(self, bad_step: int) -> Optional[int]:
        """Put back the newest copy taken before `bad_step` (the first step
        whose loss, or whose weights, were not finite) -- or, when the very
        first step went wrong, the copy taken before it; the step the copy
        was taken before, or None when there is none."""
        copies = [self.copies[self.newest], self.copies[1 - self.newest]]
        chosen = next((c for c in copies if c is not None and c[0] < bad_step), None) or \
            next((c for c in copies if c is not None and c[0] == bad_step), None)
        if chosen is None:
            return None
        step, weights, state = chosen
        for array, saved in zip(self.weights, weights):
            np.copyto(array, saved)
        if state:
            self.optimizer.load_state(state)
        return step


def _finite(array: np.ndarray) -> bool:
    if array.dtype in (np.float32, np.float64) and array.flags.c_contiguous:
        return all_finite(array)          # without a temporary
    return array.dtype.kind not in "fc" or bool(np.isfinite(array).all())
