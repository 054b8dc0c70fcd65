# Native helpers of data handling: the finiteness check of inputs and the
# sample-order generator that training shuffles epochs with.
import numpy as np
from libc.stdint cimport int64_t, uint64_t
from core cimport real, F32, address, dtype_code
cimport rng

cdef extern from "runtime.h" nogil:
    double now_seconds()

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1

# a long check looks for pending signals (Ctrl-C) this often, in seconds
cdef double SIGNAL_INTERVAL = 0.02


# True when no element of a (count) is NaN or inf (x - x is 0 only for finite
# x).  Each block is checked without an early exit, so the loop vectorizes.
cdef bint _all_finite(const real* a, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i, start, end
    cdef bint bad = False
    for start in range(0, count, 4096):
        end = min(start + 4096, count)
        for i in range(start, end):
            bad |= a[i] - a[i] != 0
        if bad:
            return False
    return True


def all_finite(array):
    """True when no element of the contiguous float array is NaN or inf.

    Small arrays are checked without releasing the GIL: a release and
    re-acquire costs more than the check and hands the GIL to other threads.
    Large ones are checked in blocks, looking for pending signals (Ctrl-C)
    between blocks."""
    cdef Py_ssize_t count = array.size, start = 0, block = 1 << 20
    cdef bint finite = True
    cdef const float* f = NULL
    cdef const double* d = NULL
    cdef double checked = now_seconds()
    if dtype_code(array) == F32:
        f = <const float*>address(array)
        if count < 65536:
            return _all_finite(f, count)
    else:
        d = <const double*>address(array)
        if count < 65536:
            return _all_finite(d, count)
    with nogil:
        while finite and start < count:
            if f != NULL:
                finite = _all_finite(f + start, min(block, count - start))
            else:
                finite = _all_finite(d + start, min(block, count - start))
            start += block
            if start < count and now_seconds() - checked > SIGNAL_INTERVAL:
                with gil:
                    PyErr_CheckSignals()
                checked = now_seconds()
    return finite


def new_shuffle_state(uint64_t seed):
    """A generator state (4 uint64) for `Plan.train`, `shuffle` and dropout."""
    state = np.empty(4, np.uint64)
    cdef uint64_t[::1] words = state
    rng.seed_state(&words[0], seed)
    return state


def shuffle(int64_t[::1] order, uint64_t[::1] state):
    """Refill `order` with a random permutation of 0..N-1, exactly as
    `Plan.train` does at an epoch start (each epoch's order depends only on
    the generator state, not on the previous order)."""
    rng.new_order(&order[0], order.shape[0], &state[0])
