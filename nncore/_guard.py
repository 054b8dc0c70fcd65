"""Who may use a network at a time: any number of readers (predict,
InferenceSession.predict, save, copy) or one writer (fit, set_weights),
never both.  Decisions are taken under a lock, so two threads can never
both pass."""
from __future__ import annotations

import threading
from typing import Optional

from . import _fork


class UseGuard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writer: Optional[int] = None   # thread id of the running fit
        self._readers = 0                    # reading calls in flight
        _fork.reset_in_child(self)

    def begin_write(self, what: str, nested: bool = False) -> bool:
        """Claim the network for a call that changes its weights; RuntimeError
        when another call is training it or reading it.  With `nested`, a
        call from inside the running fit's own thread (a callback) goes
        ahead without a claim.  True when claimed: pair with end_write()."""
        me = threading.get_ident()
        with self._lock:
            if nested and self._writer == me:
                return False
            if self._writer is not None:
                raise RuntimeError(f"{what}: this network is already being trained "
                                   f"(fit is running in "
                                   f"{'this' if self._writer == me else 'another'}"
                                   f" thread)")
            if self._readers:
                raise RuntimeError(f"{what}: this network is being used by "
                                   f"{self._readers} predict, save or copy call(s) in "
                                   f"other threads; train a copy (network.copy()) or "
                                   f"wait for them to return")
            self._writer = me
            return True

    def end_write(self) -> None:
        with self._lock:
            self._writer = None

    def begin_read(self, what: str) -> None:
        """Register a call that reads the weights; RuntimeError while another
        thread trains the network (the thread running fit may read, e.g. for
        validation or a checkpoint)."""
        with self._lock:
            writer = self._writer
            if writer is not None and writer != threading.get_ident():
                raise RuntimeError(f"{what}: fit is running on this network in another "
                                   f"thread and is changing its weights; predict on a "
                                   f"copy or after fit returns")
            self._readers += 1

    def end_read(self) -> None:
        with self._lock:
            self._readers -= 1

    def reset(self) -> None:
        """In a forked child: the threads that held the network are gone."""
        self._lock = threading.Lock()
        self._writer = None
        self._readers = 0
