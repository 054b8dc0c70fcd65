# Inverted dropout: in training each element is zeroed with probability
# `rate` and the survivors are scaled by 1 / (1 - rate); at inference the op
# is the identity.  Sample r of a training batch draws its mask from
# rng.sample_state(key, draw_index(op, r)), the plan drawing the key once per
# batch from a xoshiro256** state owned by the Python layer (core.pxd: Op.key).
from libc.string cimport memcpy
from libc.stdint cimport uint64_t
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, address, dtype_code, draw_index
cimport rng


cdef struct DropoutCfg:
    double rate


# y (n, size) = x * mask;  mask (n, size) = 0 with probability rate, else
# 1 / (1 - rate), row r drawn from sample_state(op.key, draw_index(op, r))
cdef void dropout_forward(real* y, real* mask, const real* x, Py_ssize_t n, Py_ssize_t size,
                          double rate, const Op* op) noexcept nogil:
    cdef Py_ssize_t r, i
    cdef uint64_t state[4]
    cdef real scale = <real>(1.0 / (1.0 - rate))
    for r in range(n):
        rng.sample_state(state, op.key, draw_index(op, r))
        for i in range(r * size, (r + 1) * size):
            mask[i] = scale if rng.next_double(state) >= rate else 0
            y[i] = x[i] * mask[i]


# dx (count) = dy * mask
cdef void dropout_backward(real* dx, const real* dy, const real* mask,
                           Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        dx[i] = dy[i] * mask[i]


cdef void _forward(Op* op, Py_ssize_t n, bint training, real* y) noexcept nogil:
    # op.state[0] (plan-owned): 1 when the last forward drew a mask into op.cache
    cdef const DropoutCfg* c = <const DropoutCfg*>op.cfg
    op.state[0] = training
    if training:
        dropout_forward(y, <real*>op.cache, <const real*>op.x, n, op.in_size, c.rate, op)
    else:
        memcpy(y, op.x, n * op.in_size * sizeof(real))


cdef void _backward(Op* op, Py_ssize_t n, real* dx) noexcept nogil:
    if op.state[0] != 0:
        dropout_backward(dx, <const real*>op.dy, <const real*>op.cache, n * op.in_size)
    else:
        memcpy(dx, op.dy, n * op.in_size * sizeof(real))


cdef void dropout_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _forward(op, n, training, <float*>op.y)
    else:
        _forward(op, n, training, <double*>op.y)


cdef void dropout_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dx == NULL:
        return
    if op.dtype == F32:
        _backward(op, n, <float*>op.dx)
    else:
        _backward(op, n, <double*>op.dx)


cdef class DropoutOp:
    """Native inverted dropout of samples of `size` elements; `state` is a
    uint64 array of 4 words (the generator state), which plans advance."""
    cdef Op op
    cdef DropoutCfg cfg
    cdef object state

    def __cinit__(self, dtype, Py_ssize_t size, double rate, state):
        self.state = state
        self.cfg.rate = rate
        self.op.generator = <uint64_t*>address(state)
        self.op.dtype = dtype_code(dtype)
        self.op.in_size = size
        self.op.out_size = size
        self.op.cache_size = size
        self.op.state_size = 1
        self.op.cfg = &self.cfg
        self.op.forward = dropout_op_forward
        self.op.backward = dropout_op_backward

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
