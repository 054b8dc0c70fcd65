"""Thread control for the native core: OpenMP loops and the BLAS that
scipy.linalg.cython_blas calls (through threadpoolctl)."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

from . import _fork
from ._native.openmp import get_openmp_threads, openmp_fork_safe, set_openmp_threads

MAX_THREADS = 1024

_blas = None  # threadpoolctl controller of the BLAS behind scipy.linalg.cython_blas
_num_threads: Optional[int] = None
_blas_current: Optional[int] = None  # what the core last set scipy's BLAS to
_workers_cap: Optional[int] = None  # OpenMP workers allowed (see _after_fork_in_child)
_active_runs = 0  # native runs in flight (counted under the GIL)


def _blas_controller():
    """The controller of scipy's BLAS (found once; None if not controllable)."""
    global _blas
    if _blas is None:
        import scipy.linalg.cython_blas  # noqa: F401  (make sure the library is loaded)
        from threadpoolctl import ThreadpoolController
        libraries = [lib for lib in ThreadpoolController().lib_controllers
                     if lib.user_api == "blas" and "scipy" in os.path.basename(
                         os.path.dirname(lib.filepath)).lower()]
        _blas = libraries[0] if libraries else False
    return _blas or None


def get_num_threads() -> int:
    """The number of threads nncore's native code may use.

    Returns
    -------
    int
        By default what OpenMP and the BLAS were set to when nncore first
        looked; then the last `set_num_threads`.

    Examples
    --------
    >>> import nncore
    >>> nncore.get_num_threads() >= 1
    True
    """
    global _num_threads
    if _num_threads is None:
        blas = _blas_controller()
        _num_threads = max(get_openmp_threads(), blas.num_threads if blas else 1)
    return _num_threads


def set_num_threads(n: int) -> None:
    """Use n threads for OpenMP loops and BLAS in nncore's native code.

    Results do not depend on the thread count: work is split the same way
    at any count.

    Parameters
    ----------
    n : int
        The number of threads, from 1 to the most nncore supports.

    Raises
    ------
    ValueError
        If n is not an integer in range.

    Examples
    --------
    >>> import nncore
    >>> before = nncore.get_num_threads()
    >>> nncore.set_num_threads(1)
    >>> nncore.get_num_threads()
    1
    >>> nncore.set_num_threads(before)
    """
    global _num_threads, _blas_current
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads takes an integer from 1 to {MAX_THREADS}, "
                         f"got {n!r}")
    set_openmp_threads(n)
    blas = _blas_controller()
    if blas:
        blas.set_num_threads(n)
    _num_threads = n
    _blas_current = n


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Context manager form of `set_num_threads`: n threads inside the
    ``with`` block, the previous count after it.

    Parameters
    ----------
    n : int
        The number of threads inside the block.

    Returns
    -------
    context manager
        Restores the previous thread count on exit.

    Examples
    --------
    >>> import nncore
    >>> before = nncore.get_num_threads()
    >>> with nncore.threads(1):
    ...     print(nncore.get_num_threads())
    1
    >>> nncore.get_num_threads() == before
    True
    """
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)


def begin_native_run(blas_threads: int) -> None:
    """Call before a native run that may use BLAS, with the thread count it
    should use; pair with end_native_run().

    Small problems want one BLAS thread (small matrix products are slower
    threaded, and threaded BLAS collapses when another process loads the
    machine), large ones `get_num_threads()`.  The setting is process-wide
    and is only changed while no other native run is in flight (another
    Python thread may be inside BLAS with the GIL released), and it stays
    until the next change, so a steady stream of calls pays one comparison."""
    global _blas_current, _active_runs
    if _active_runs == 0 and blas_threads != _blas_current:
        blas = _blas_controller()
        if blas:
            blas.set_num_threads(blas_threads)
        _blas_current = blas_threads
    _active_runs += 1


def end_native_run() -> None:
    global _active_runs
    _active_runs -= 1


def max_workers() -> int:
    """The OpenMP worker threads a native call may use."""
    n = get_num_threads()
    return n if _workers_cap is None else min(n, _workers_cap)


def _after_fork_in_child(drained: bool) -> None:
    """The native runs counted here belonged to threads the child does not
    have.  GNU libgomp keeps its thread pool across fork() without the
    threads, so a child's parallel region could hang: such a child runs its
    OpenMP work on one thread.  When a fork could not wait for native runs to
    end, the child runs everything (BLAS too) on one thread."""
    global _active_runs, _workers_cap
    _active_runs = 0
    if not openmp_fork_safe():
        _workers_cap = 1
        set_openmp_threads(1)
    if not drained:
        set_num_threads(1)


_fork.on_child(_after_fork_in_child)
