# Embedding: each sample is T indices (integers held in the network's float
# dtype); its output is the T table rows they pick.  The layer checks the
# indices at the network boundary; an index that is not in [0, V) anyway
# (NaN, out of range) reads no memory and gives a zero row.
from libc.string cimport memcpy, memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, address, dtype_code, declare_params


cdef struct EmbeddingCfg:
    Py_ssize_t T, V, D        # indices per sample, table rows, row length
    void* table


# y (n*T, D) = table (V, D)[x (n*T)]
cdef void embedding_forward(real* y, const real* x, const real* table, Py_ssize_t rows,
                            Py_ssize_t V, Py_ssize_t D) noexcept nogil:
    cdef Py_ssize_t r
    cdef real v
    for r in range(rows):
        v = x[r]
        if v >= 0 and v < V:
            memcpy(y + r * D, table + <Py_ssize_t>v * D, D * sizeof(real))
        else:
            memset(y + r * D, 0, D * sizeof(real))


# g_table (V, D) = the rows of dy (n*T, D) summed into the rows x (n*T) picked,
# zero elsewhere
cdef void embedding_backward(real* g_table, const real* dy, const real* x, Py_ssize_t rows,
                             Py_ssize_t V, Py_ssize_t D) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef real v
    cdef real* row
    memset(g_table, 0, V * D * sizeof(real))
    for r in range(rows):
        v = x[r]
        if v >= 0 and v < V:
            row = g_table + <Py_ssize_t>v * D
            for j in range(D):
                row[j] += dy[r * D + j]


cdef void _forward(Op* op, Py_ssize_t n, real* y) noexcept nogil:
    cdef const EmbeddingCfg* c = <const EmbeddingCfg*>op.cfg
    embedding_forward(y, <const real*>op.x, <const real*>c.table, n * c.T, c.V, c.D)


cdef void _backward(Op* op, Py_ssize_t n, real* g_table) noexcept nogil:
    cdef const EmbeddingCfg* c = <const EmbeddingCfg*>op.cfg
    embedding_backward(g_table, <const real*>op.dy, <const real*>op.x, n * c.T, c.V, c.D)
    if op.dx != NULL:       # indices have no gradient
        memset(op.dx, 0, n * c.T * sizeof(real))


cdef void embedding_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _forward(op, n, <float*>op.y)
    else:
        _forward(op, n, <double*>op.y)


cdef void embedding_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dtype == F32:
        _backward(op, n, <float*>op.grads[0])
    else:
        _backward(op, n, <double*>op.grads[0])


cdef class EmbeddingOp:
    """Native embedding lookup of T indices per sample in table (V, D), with
    its gradient g_table (V, D); both C-contiguous, one dtype."""
    cdef Op op
    cdef EmbeddingCfg cfg
    cdef tuple arrays

    def __cinit__(self, table, g_table, Py_ssize_t length):
        self.arrays = (table, g_table)
        self.cfg.T = length
        self.cfg.V, self.cfg.D = table.shape
        self.cfg.table = address(table)
        self.op.dtype = dtype_code(table)
        self.op.in_size = length
        self.op.out_size = length * self.cfg.D
        self.op.cfg = &self.cfg
        self.op.forward = embedding_op_forward
        self.op.backward = embedding_op_backward
        declare_params(&self.op, ((table, g_table),))

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
