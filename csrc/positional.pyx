# Learned positional embedding: y[t] = x[t] + table[t] for the T positions of
# a (T, D) sample, table (max_len, D) with T <= max_len.
from libc.string cimport memcpy, memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, address, dtype_code, declare_params


cdef struct PositionalCfg:
    Py_ssize_t T, D, L        # positions used, row length, table rows
    void* table


# y (n, T*D) = x (n, T*D) + table (T*D) broadcast over the samples
cdef void positional_forward(real* y, const real* x, const real* table, Py_ssize_t n,
                             Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t s, j
    for s in range(n):
        for j in range(size):
            y[s * size + j] = x[s * size + j] + table[j]


# g_table (L*D) = the sum over samples of dy (n, T*D) in its first T*D values,
# zeros after (totals: (T*D) doubles); dx = dy unless dx is NULL
cdef void positional_backward(real* dx, real* g_table, double* totals, const real* dy,
                              Py_ssize_t n, Py_ssize_t size, Py_ssize_t table_size) noexcept nogil:
    cdef Py_ssize_t s, j
    for j in range(size):
        totals[j] = 0
    for s in range(n):
        for j in range(size):
            totals[j] += dy[s * size + j]
    for j in range(size):
        g_table[j] = <real>totals[j]
    memset(g_table + size, 0, (table_size - size) * sizeof(real))
    if dx != NULL:
        memcpy(dx, dy, n * size * sizeof(real))


cdef void positional_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    cdef const PositionalCfg* c = <const PositionalCfg*>op.cfg
    if op.dtype == F32:
        positional_forward(<float*>op.y, <const float*>op.x, <const float*>c.table, n,
                           op.in_size)
    else:
        positional_forward(<double*>op.y, <const double*>op.x, <const double*>c.table, n,
                           op.in_size)


cdef void positional_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    cdef const PositionalCfg* c = <const PositionalCfg*>op.cfg
    if op.dtype == F32:
        positional_backward(<float*>op.dx, <float*>op.grads[0], op.state, <const float*>op.dy,
                            n, op.in_size, c.L * c.D)
    else:
        positional_backward(<double*>op.dx, <double*>op.grads[0], op.state,
                            <const double*>op.dy, n, op.in_size, c.L * c.D)


cdef class PositionalOp:
    """Native positional embedding of (T, D) samples with table (max_len, D)
    and its gradient g_table (max_len, D), C-contiguous, one dtype."""
    cdef Op op
    cdef PositionalCfg cfg
    cdef tuple arrays

    def __cinit__(self, table, g_table, Py_ssize_t steps):
        self.arrays = (table, g_table)
        self.cfg.L, self.cfg.D = table.shape
        if not 0 < steps <= self.cfg.L:
            raise ValueError(f"{steps} positions do not fit a table of {self.cfg.L}")
        self.cfg.T = steps
        self.cfg.table = address(table)
        self.op.dtype = dtype_code(table)
        self.op.in_size = steps * self.cfg.D
        self.op.out_size = steps * self.cfg.D
        self.op.state_size = steps * self.cfg.D
        self.op.cfg = &self.cfg
        self.op.forward = positional_op_forward
        self.op.backward = positional_op_backward
        declare_params(&self.op, ((table, g_table),))

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
