"""Fork safety.

A process that forks (os.fork, multiprocessing's 'fork' start method,
pre-fork servers) while other threads run nncore must give the child a
working nncore.  Before the fork, native sections that may use BLAS threads
are stopped at their next chunk boundary and the fork waits for the running
ones to end (csrc/runtime.h), so the BLAS runtime's own fork handling finds
its threads idle.  In the child, nncore's locks and counters are reset (the
threads that held them do not exist there), and an OpenMP runtime that
cannot restart its threads after fork (GNU libgomp) is set to one thread.
If sections were still running after FORK_WAIT seconds, the child runs
nncore on one thread (OpenMP and BLAS) rather than risk a hang.
"""
from __future__ import annotations

import os
import weakref
from typing import Callable, List

from ._native import plan as _plan

#: seconds a fork waits for running native sections (each is one chunk of
#: samples or one training step) before going ahead regardless
FORK_WAIT = 10.0

_resettable: "weakref.WeakSet" = weakref.WeakSet()
_child_hooks: List[Callable[[bool], None]] = []
_drained = True      # the last fork found no native section running


def reset_in_child(obj) -> None:
    """Call obj.reset() in every forked child (obj is held weakly)."""
    _resettable.add(obj)


def on_child(function) -> None:
    """Call function(drained) in every forked child; drained is False when
    native sections were still running at the fork."""
    _child_hooks.append(function)


def _before() -> None:
    global _drained
    _drained = _plan.fork_prepare(FORK_WAIT)


def _after_in_parent() -> None:
    _plan.fork_parent()


def _after_in_child() -> None:
    _plan.fork_child()
    for obj in list(_resettable):
        obj.reset()
    for function in _child_hooks:
        function(_drained)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before, after_in_parent=_after_in_parent,
                        after_in_child=_after_in_child)
