"""Who may use a network's weights at a given moment.

A fit changes the weights in place between native calls, so it must not
overlap a prediction that reads them from another thread, nor another fit.
The decision is taken atomically under one lock (never check-then-set)."""
from __future__ import annotations

import threading
import time
from typing import Optional

from . import _fork


class RunGuard:
    """One fit at a time, no fit while any prediction is in flight, and no
    prediction from another thread while a fit runs.  The fitting thread
    itself may predict (validation, callbacks).  A writer may wait for the
    network to be free (`wait` seconds); while one waits, new predictions
    are refused, so that a stream of them cannot keep it out.  Every entry
    point holds it as a context manager: `with guard.reading("Network.save"):`
    for calls that read the weights, `with guard.writing("Network.fit"):` for
    calls that change them."""

    __slots__ = ("_lock", "_free", "_fit_thread", "_predictions", "_waiting", "__weakref__")

    def __init__(self) -> None:
        self.reset()
        _fork.reset_in_child(self)

    def begin_fit(self, caller: str = "Network.fit", wait: Optional[float] = None) -> None:
        """Claim the network for a call that changes its weights (fit, or
        set_weights from outside a fit); when it is busy, wait up to `wait`
        seconds (None or 0: not at all) for it to be free."""
        deadline = None if not wait else time.monotonic() + wait
        with self._lock:
            self._waiting += deadline is not None
            try:
                while self._fit_thread is not None or self._predictions:
                    left = 0.0 if deadline is None else deadline - time.monotonic()
                    if left <= 0:
                        raise RuntimeError(self._busy(caller, wait))
                    self._free.wait(left)
            finally:
                self._waiting -= deadline is not None
            self._fit_thread = threading.get_ident()

    def reading(self, caller: str) -> "_Claim":
        """A context that holds the network for a call that reads its weights."""
        return _Claim(self.begin_predict, self.end_predict, caller)

    def writing(self, caller: str = "Network.fit", wait: Optional[float] = None) -> "_Claim":
        """A context that holds the network for a call that changes its
        weights (waiting up to `wait` seconds, as begin_fit)."""
        return _Claim(lambda who: self.begin_fit(who, wait), self.end_fit, caller)

    def _busy(self, caller: str, wait: Optional[float]) -> str:
        waited = f" (waited {wait:g} s)" if wait else "; pass wait=seconds to wait for it"
        if self._fit_thread is not None:
            return (f"{caller}: this network is already being trained (by another thread, "
                    f"or a callback called fit){waited}")
        return (f"{caller}: a prediction (or save, copy) on this network is in flight in "
                f"another thread{waited}; fit after it returns, or fit a copy")

    def end_fit(self) -> None:
        with self._lock:
            self._fit_thread = None
            self._free.notify_all()

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
            if self._waiting and owner is None:
                raise RuntimeError(f"{caller}: a fit or set_weights is waiting for this "
                                   f"network's predictions to end; predict on a copy "
                                   f"(network.copy()) or after it returns")
            self._predictions += 1

    def end_predict(self) -> None:
        with self._lock:
            self._predictions -= 1
            if not self._predictions:
                self._free.notify_all()

    def reset(self) -> None:
        """A free guard (also, in a forked child, since the threads that held
        the network are gone)."""
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)
        self._fit_thread: Optional[int] = None
        self._predictions = 0
        self._waiting = 0


class _Claim:
    """`with`: begin(caller) on entry, end() on exit."""

    __slots__ = ("begin", "end", "caller")

    def __init__(self, begin, end, caller: str) -> None:
        self.begin, self.end, self.caller = begin, end, caller

    def __enter__(self) -> None:
        self.begin(self.caller)

    def __exit__(self, *exc) -> None:
        self.end()
