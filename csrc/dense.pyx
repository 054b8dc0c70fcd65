# Fully connected layer: y = x @ W + b with W (n_in, n_out), through BLAS.
from libc.string cimport memcpy, memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, DenseCfg, OP_DENSE, F32, address, dtype_code
from blas cimport gemm, gemv, ger


# y (rows, n_out) = x (rows, n_in) @ W (n_in, n_out) + b (n_out); b may be NULL
cdef void dense_forward(real* y, const real* x, const real* W, const real* b,
                        Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    cdef Py_ssize_t r
    cdef real beta = 0
    if b != NULL:
        for r in range(rows):
            memcpy(y + r * n_out, b, n_out * sizeof(real))
        beta = 1
    if rows == 1:
        gemv(True, n_in, n_out, 1, W, n_out, x, beta, y)
    else:
        gemm(False, False, rows, n_out, n_in, 1, x, n_in, W, n_out, beta, y, n_out)


# dx (rows, n_in) = dy (rows, n_out) @ W^T              (skipped when dx is NULL)
# gW (n_in, n_out) = beta * gW + alpha * x^T @ dy        (beta is 0 or 1)
# gb (n_out)       = beta * gb + alpha * sum_rows(dy)    (skipped when gb is NULL)
# With gW = W, alpha = -lr, beta = 1 this is a plain SGD step done in place.
cdef void dense_backward(real* dx, real* gW, real* gb, const real* x, const real* dy,
                         const real* W, Py_ssize_t rows, Py_ssize_t n_in,
                         Py_ssize_t n_out, real alpha, real beta) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef double total
    if dx != NULL:
        if rows == 1:
            gemv(False, n_in, n_out, 1, W, n_out, dy, 0, dx)
        else:
            gemm(False, True, rows, n_in, n_out, 1, dy, n_out, W, n_out, 0, dx, n_in)
    if rows == 1:
        # rank-1 update straight into the kept buffer
        if beta == 0:
            memset(gW, 0, n_in * n_out * sizeof(real))
        ger(n_in, n_out, alpha, x, dy, gW, n_out)
    else:
        gemm(True, False, n_in, n_out, rows, alpha, x, n_in, dy, n_out, beta, gW, n_out)
    if gb != NULL:
        for j in range(n_out):
            total = 0
            for r in range(rows):
                total += dy[r * n_out + j]
            if beta == 0:
                gb[j] = <real>(alpha * total)
            else:
                gb[j] = <real>(gb[j] + alpha * total)


cdef void _forward(Op* op, Py_ssize_t n, real* y, const real* x) noexcept nogil:
    cdef DenseCfg* c = <DenseCfg*>op.cfg
    dense_forward(y, x, <const real*>c.W, <const real*>c.b,
                  n * op.in_size // c.n_in, c.n_in, c.n_out)


cdef void _backward(Op* op, Py_ssize_t n, real* dx, const real* dy) noexcept nogil:
    cdef DenseCfg* c = <DenseCfg*>op.cfg
    cdef Py_ssize_t rows = n * op.in_size // c.n_in
    if op.sgd_lr != 0:
        dense_backward(dx, <real*>c.W, <real*>c.b, <const real*>op.x, dy,
                       <const real*>c.W, rows, c.n_in, c.n_out, <real>-op.sgd_lr, 1)
    else:
        dense_backward(dx, <real*>c.gW, <real*>c.gb, <const real*>op.x, dy,
                       <const real*>c.W, rows, c.n_in, c.n_out, 1, 0)


cdef void dense_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _forward(op, n, <float*>op.y, <const float*>op.x)
    else:
        _forward(op, n, <double*>op.y, <const double*>op.x)


cdef void dense_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dtype == F32:
        _backward(op, n, <float*>op.dx, <const float*>op.dy)
    else:
        _backward(op, n, <double*>op.dx, <const double*>op.dy)


cdef class DenseOp:
    """Native dense op over arrays owned by the Python layer.

    W, gW: (n_in, n_out); b, gb: (n_out,) or None; all C-contiguous, one dtype.
    `rows_per_sample` lets a sample be (..., n_in) as in the article's (1, n_in).
    """
    cdef Op op
    cdef DenseCfg cfg
    cdef tuple arrays

    def __cinit__(self, W, b, gW, gb, Py_ssize_t rows_per_sample=1):
        self.arrays = (W, b, gW, gb)
        self.cfg.n_in, self.cfg.n_out = W.shape
        self.cfg.W = address(W)
        self.cfg.gW = address(gW)
        self.cfg.b = address(b) if b is not None else NULL
        self.cfg.gb = address(gb) if gb is not None else NULL
        self.op.kind = OP_DENSE
        self.op.dtype = dtype_code(W)
        self.op.in_size = rows_per_sample * self.cfg.n_in
        self.op.out_size = rows_per_sample * self.cfg.n_out
        self.op.cfg = &self.cfg
        self.op.forward = dense_op_forward
        self.op.backward = dense_op_backward

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
