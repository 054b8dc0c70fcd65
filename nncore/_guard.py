"""Who may use a network's weights at a given moment.

A fit changes the weights in place between native calls, so it must not
overlap a prediction that reads them from another thread, nor another fit.
The decision is taken atomically under one lock (never check-then-set)."""
from __future__ import annotations

import threading
from typing import Optional


class RunGuard:
    """One fit at a time, no fit while any prediction is in flight, and no
    prediction from another thread while a fit runs.  The fitting thread
    itself may predict (validation data, callbacks)."""

    __slots__ = ("_lock", "_fit_thread", "_predictions")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fit_thread: Optional[int] = None
        self._predictions = 0

    def begin_fit(self) -> None:
        with self._lock:
            if self._fit_thread is not None:
                raise RuntimeError("Network.fit: this network is already being trained "
                                   "(by another thread, or a callback called fit)")
            if self._predictions:
                raise RuntimeError("Network.fit: a prediction on this network is in flight "
                                   "in another thread; fit after it returns, or fit a copy")
            self._fit_thread = threading.get_ident()

    def end_fit(self) -> None:
        with self._lock:
            self._fit_thread = None

    def fitting_here(self) -> bool:
        """True inside a fit running in this thread (validation, callbacks)."""
        return self._fit_thread == threading.get_ident()

    def begin_predict(self, caller: str) -> None:
        with self._lock:
            owner = self._fit_thread
            if owner is not None and owner != threading.get_ident():
                raise RuntimeError(f"{caller}: fit is running on this network in another "
                                   f"thread and is changing its weights; predict on a copy "
                                   f"(network.copy()) or after fit returns")
            self._predictions += 1

    def end_predict(self) -> None:
        with self._lock:
            self._predictions -= 1
