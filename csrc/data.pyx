# Native helpers of data handling: the finiteness check of inputs and the
# sample-order generator that training shuffles epochs with.
import numpy as np
from libc.stdint cimport int64_t, uint32_t, uint64_t
from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release, PyBuffer_IsContiguous,
                             PyBUF_STRIDES, PyBUF_ANY_CONTIGUOUS)
from core cimport real, F32, F64, address, dtype_code
cimport rng
from runtime cimport now_seconds, signals_due, PyErr_CheckSignals


# True when no element of a (count) is NaN or inf: those are the values whose
# exponent bits are all set, and adding one to an all-ones exponent carries
# into the sign bit.  Integer operations only, OR-ed without an early exit
# within a block, so the loop vectorizes.
cdef bint _all_finite(const real* a, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i, start, end
    cdef const uint32_t* f
    cdef const uint64_t* d
    cdef uint32_t bad32 = 0
    cdef uint64_t bad64 = 0
    for start in range(0, count, 4096):
        end = min(start + 4096, count)
        if real is float:
            f = <const uint32_t*>a
            for i in range(start, end):
                bad32 |= (f[i] & 0x7f800000u) + 0x00800000u
            if bad32 & 0x80000000u:
                return False
        else:
            d = <const uint64_t*>a
            for i in range(start, end):
                bad64 |= (d[i] & 0x7ff0000000000000u) + 0x0010000000000000u
            if bad64 & 0x8000000000000000u:
                return False
    return True


def all_finite(array):
    """True when no element of the contiguous float array is NaN or inf."""
    return _checked_finite(address(array), array.size, dtype_code(array))


# True when the count values at a (F32 or F64 by code) are all finite.  Small
# arrays are checked without releasing the GIL: a release and re-acquire
# costs more than the check and hands the GIL to other threads.  Large ones
# are checked in blocks, looking for pending signals (Ctrl-C) between blocks.
cdef bint _checked_finite(const void* a, Py_ssize_t count, int code) except -1:
    cdef Py_ssize_t start = 0, block = 1 << 20
    cdef bint finite = True
    cdef const float* f = <const float*>a if code == F32 else NULL
    cdef const double* d = <const double*>a if code == F64 else NULL
    cdef double checked = now_seconds()
    if count < 65536:
        return _all_finite(f, count) if f != NULL else _all_finite(d, count)
    with nogil:
        while finite and start < count:
            if f != NULL:
                finite = _all_finite(f + start, min(block, count - start))
            else:
                finite = _all_finite(d + start, min(block, count - start))
            start += block
            if start < count and signals_due(checked):
                with gil:
                    PyErr_CheckSignals()
                checked = now_seconds()
    return finite


cdef object ndarray = np.ndarray


# True when view holds a C-contiguous array of shape (n,) + shape with n >= 1
# (batch) or of exactly `shape` (not batch)
cdef bint _shaped(Py_buffer* view, tuple shape, bint batch) except -1:
    cdef Py_ssize_t i, first = 1 if batch else 0
    if not PyBuffer_IsContiguous(view, b'C'):
        return False
    if view.ndim != first + len(shape) or (batch and view.shape[0] < 1):
        return False
    for i in range(len(shape)):
        if view.shape[first + i] != <Py_ssize_t>shape[i]:
            return False
    return True


def ready_batch(x, dtype, tuple sample_shape):
    """1 when x is a non-empty C-contiguous ndarray of `dtype` and shape
    (n,) + sample_shape holding only finite values; -1 when it is such an
    array but holds NaN or inf; 0 when it is not such an array (the caller
    converts it, or says what is wrong).  Costs well under a microsecond for
    one sample."""
    cdef Py_buffer view
    cdef int state = 0
    if type(x) is not ndarray or x.dtype is not dtype:
        return 0
    PyObject_GetBuffer(x, &view, PyBUF_STRIDES)
    try:
        if _shaped(&view, sample_shape, True):
            finite = _checked_finite(view.buf, view.len // view.itemsize, dtype_code(dtype))
            state = 1 if finite else -1
    finally:
        PyBuffer_Release(&view)
    return state


def ready_output(out, x, dtype, tuple shape):
    """1 when `out` is a writeable C-contiguous ndarray of `dtype` and exactly
    `shape` whose memory does not overlap the array x; -1 when it is such an
    array but overlaps x; 0 when it is not such an array."""
    cdef Py_buffer view, source
    cdef int state = 0
    cdef char* low
    cdef char* high
    if type(out) is not ndarray or out.dtype is not dtype:
        return 0
    PyObject_GetBuffer(out, &view, PyBUF_STRIDES)
    try:
        if not view.readonly and _shaped(&view, shape, False):
            PyObject_GetBuffer(x, &source, PyBUF_ANY_CONTIGUOUS)
            low, high = <char*>source.buf, <char*>source.buf + source.len
            PyBuffer_Release(&source)
            overlaps = <char*>view.buf < high and low < <char*>view.buf + view.len
            state = -1 if overlaps else 1
    finally:
        PyBuffer_Release(&view)
    return state


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
