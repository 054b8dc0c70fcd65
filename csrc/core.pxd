# Shared declarations of the native core: the dtype-generic scalar type, the
# op / loss / updater records that the plan executor drives, and tiny inline
# math helpers.  This file declares no Python-visible objects, so cimporting
# it creates no run-time import.
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_ANY_CONTIGUOUS
from libc.math cimport tanh, tanhf, exp, expf, log, logf, log1p, log1pf, fabs, fabsf

ctypedef fused real:
    float
    double

cdef enum DType:
    F32 = 0
    F64 = 1


cdef enum OpKind:
    OP_GENERIC = 0
    OP_DENSE = 1      # cfg is a DenseCfg (the plan reads it for per-sample SGD)


# The cfg of a dense op: y (rows, n_out) = x (rows, n_in) @ W + b
cdef struct DenseCfg:
    Py_ssize_t n_in
    Py_ssize_t n_out
    void* W
    void* b           # NULL without bias
    void* gW
    void* gb


# One layer of the native core.  The owning Python object fills `cfg`,
# the sizes and the two function pointers; whoever runs the op (a Plan)
# fills the buffer pointers.  Buffers are batch-first and contiguous:
#   x, dx: (n, in_size)   y, dy: (n, out_size)
#   cache: (n, cache_size) private to this op, kept from forward to backward
#   work:  (n, work_size) scratch shared by all ops of a plan
cdef struct Op:
    int kind
    int dtype
    Py_ssize_t in_size
    Py_ssize_t out_size
    Py_ssize_t cache_size
    Py_ssize_t work_size
    void* cfg
    void* x
    void* y
    void* dx          # NULL when the gradient w.r.t. the input is not needed
    void* dy
    void* cache
    void* work
    # learning rate of a fused plain-SGD step: when non-zero, backward
    # applies `param -= sgd_lr * grad` in place instead of writing grads.
    double sgd_lr
    void (*forward)(Op* op, Py_ssize_t n, bint training) noexcept nogil
    void (*backward)(Op* op, Py_ssize_t n) noexcept nogil


# A loss over a batch of predictions: returns the mean loss of the batch and,
# when dpred is not NULL, writes the gradient of that mean w.r.t. pred.
#   pred, dpred: (n, size)   target: (n, target_size)   weights: (n) or NULL
# With weights, sample i's loss counts weights[i] times in the mean over the
# n samples (Keras: sum_i w_i loss_i / n).  Whoever runs the loss (a Plan on
# its own copy of this record) points `weights` at its batch's weights.
cdef struct Loss:
    int dtype
    Py_ssize_t size
    Py_ssize_t target_size
    Py_ssize_t width          # class axis length (last axis of pred)
    void* cfg
    const void* weights
    double (*evaluate)(Loss* loss, Py_ssize_t n, const void* pred,
                       const void* target, void* dpred) noexcept nogil


# An optimizer step applied to one parameter array at a time.
# `slot` indexes the parameter (for optimizers that keep per-parameter state).
cdef struct Updater:
    int dtype
    void* cfg
    double learning_rate
    long step                 # number of completed steps before this one
    void (*update)(Updater* u, Py_ssize_t slot, void* param, const void* grad,
                   Py_ssize_t size) noexcept nogil


# param (size) -= lr * grad (size): the plain SGD step, also fused into backward
cdef inline void sgd_step(real* param, const real* grad, Py_ssize_t size,
                          real lr) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        param[i] -= lr * grad[i]


cdef inline real r_tanh(real v) noexcept nogil:
    if real is float:
        return tanhf(v)
    else:
        return tanh(v)

cdef inline real r_exp(real v) noexcept nogil:
    if real is float:
        return expf(v)
    else:
        return exp(v)

cdef inline real r_log(real v) noexcept nogil:
    if real is float:
        return logf(v)
    else:
        return log(v)

cdef inline real r_log1p(real v) noexcept nogil:
    if real is float:
        return log1pf(v)
    else:
        return log1p(v)

cdef inline real r_abs(real v) noexcept nogil:
    if real is float:
        return fabsf(v)
    else:
        return fabs(v)


# Address of the first element of a contiguous array (validated by the caller),
# through the buffer protocol: a few hundred nanoseconds, no allocation.
cdef inline void* address(object array) except? NULL:
    cdef Py_buffer view
    cdef void* pointer
    PyObject_GetBuffer(array, &view, PyBUF_ANY_CONTIGUOUS)
    pointer = view.buf
    PyBuffer_Release(&view)
    return pointer

# F32 / F64 for a float32 / float64 array or numpy dtype
cdef inline int dtype_code(object array_or_dtype) except -1:
    dtype = getattr(array_or_dtype, 'dtype', array_or_dtype)
    kind = dtype.str[1:]
    if kind == 'f4':
        return F32
    if kind == 'f8':
        return F64
    raise TypeError(f"native kernels take float32 or float64, not {dtype}")
