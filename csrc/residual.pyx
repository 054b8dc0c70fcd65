# A residual connection y = x + f(x) as two ops around the ops of f, in one
# plan's array of op records: the opening op passes its input through, the
# closing op `span` records after it adds the opening op's input to f's
# output.  Each op finds the other by that fixed distance in the array it
# runs in, so every copy of the records a plan makes (per worker, per shard)
# pairs with its own buffers.  Backward: the closing op passes dy through;
# the opening op adds the closing op's output gradient (the gradient of the
# skip path) to the gradient that came through f.
from libc.string cimport memcpy
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, dtype_code


cdef struct ResidualCfg:
    Py_ssize_t span       # closing record - opening record
    bint closing


# y (count) = a (count) + b (count)
cdef void add_arrays(real* y, const real* a, const real* b, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        y[i] = a[i] + b[i]


cdef void _forward(Op* op, Py_ssize_t n) noexcept nogil:
    cdef const ResidualCfg* c = <const ResidualCfg*>op.cfg
    cdef Py_ssize_t count = n * op.in_size
    if not c.closing:
        memcpy(op.y, op.x, count * (sizeof(float) if op.dtype == F32 else sizeof(double)))
    elif op.dtype == F32:
        add_arrays(<float*>op.y, <const float*>op.x, <const float*>(op - c.span).x, count)
    else:
        add_arrays(<double*>op.y, <const double*>op.x, <const double*>(op - c.span).x, count)


cdef void _backward(Op* op, Py_ssize_t n) noexcept nogil:
    cdef const ResidualCfg* c = <const ResidualCfg*>op.cfg
    cdef Py_ssize_t count = n * op.in_size
    if op.dx == NULL:
        return
    if c.closing:
        memcpy(op.dx, op.dy, count * (sizeof(float) if op.dtype == F32 else sizeof(double)))
    elif op.dtype == F32:
        add_arrays(<float*>op.dx, <const float*>op.dy, <const float*>(op + c.span).dy, count)
    else:
        add_arrays(<double*>op.dx, <const double*>op.dy, <const double*>(op + c.span).dy, count)


cdef void residual_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    _forward(op, n)


cdef void residual_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    _backward(op, n)


cdef class ResidualOp:
    """One end of a residual connection over samples of `size` values: the
    opening op (closing=False) or the closing op, `span` op records after
    the opening op in the same plan (span = the number of ops of f + 1)."""
    cdef Op op
    cdef ResidualCfg cfg

    def __cinit__(self, dtype, Py_ssize_t size, Py_ssize_t span, bint closing):
        if span < 1:
            raise ValueError("a residual connection spans at least one op record")
        self.cfg.span = span
        self.cfg.closing = closing
        self.op.dtype = dtype_code(dtype)
        self.op.in_size = size
        self.op.out_size = size
        self.op.cfg = &self.cfg
        self.op.forward = residual_op_forward
        self.op.backward = residual_op_backward

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
