# 1-D convolution over (T, C) samples as im2col + BLAS GEMM (col2im for dx),
# with strides, dilation and zero padding on the left (and implicitly on the
# right).  The kernel is (k, C, F); an im2col row holds one output step's
# k taps in the same (k, C) order, so the kernel is a (K = k*C, F) matrix and
# a whole batch is one GEMM.
from libc.string cimport memcpy, memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, address, dtype_code, declare_params
from epilogue cimport column_sums
from blas cimport gemm


cdef struct Conv1DCfg:
    Py_ssize_t T, C, OT, F         # input (T, C), output (OT, F)
    Py_ssize_t k, s, d, pad        # taps, stride, dilation, zero padding on the left
    void* kernel
    void* bias                     # NULL without bias


# cols (OT, k*C) = the k taps of every output step of x (T, C), zeros on the padding
cdef void im2col_1d(real* cols, const real* x, const Conv1DCfg* c) noexcept nogil:
    cdef Py_ssize_t t, i, at, C = c.C
    for t in range(c.OT):
        for i in range(c.k):
            at = t * c.s - c.pad + i * c.d
            if at >= 0 and at < c.T:
                memcpy(cols, x + at * C, C * sizeof(real))
            else:
                memset(cols, 0, C * sizeof(real))
            cols += C


# x (T, C) = the taps of cols (OT, k*C) summed back where im2col_1d took them
cdef void col2im_1d(real* x, const real* cols, const Conv1DCfg* c) noexcept nogil:
    cdef Py_ssize_t t, i, j, at, C = c.C
    memset(x, 0, c.T * C * sizeof(real))
    for t in range(c.OT):
        for i in range(c.k):
            at = t * c.s - c.pad + i * c.d
            if at >= 0 and at < c.T:
                for j in range(C):
                    x[at * C + j] += cols[j]
            cols += C


# y (n, OT, F) = conv1d(x (n, T, C), kernel (k, C, F)) + bias (F); cols: scratch (n, OT, K)
cdef void conv1d_forward(real* y, real* cols, const real* x, const real* kernel,
                         const real* bias, Py_ssize_t n, const Conv1DCfg* c) noexcept nogil:
    cdef Py_ssize_t s, r, j, K = c.k * c.C, F = c.F, rows = n * c.OT
    for s in range(n):
        im2col_1d(cols + s * c.OT * K, x + s * c.T * c.C, c)
    gemm(False, False, rows, F, K, 1, cols, K, kernel, F, 0, y, F)
    if bias != NULL:
        for r in range(rows):
            for j in range(F):
                y[r * F + j] += bias[j]


# g_kernel (K, F) = im2col(x)^T @ dy;  g_bias (F) = column sums of dy (n*OT, F)
# (totals: (F) doubles); dx (n, T, C) = col2im(dy @ kernel^T), skipped when NULL
cdef void conv1d_backward(real* dx, real* g_kernel, real* g_bias, double* totals,
                          real* cols, const real* dy, const real* x, const real* kernel,
                          Py_ssize_t n, const Conv1DCfg* c) noexcept nogil:
    cdef Py_ssize_t s, j, K = c.k * c.C, F = c.F, rows = n * c.OT
    if g_bias != NULL:
        column_sums(totals, dy, rows, F, 1)
        for j in range(F):
            g_bias[j] = <real>totals[j]
    for s in range(n):
        im2col_1d(cols + s * c.OT * K, x + s * c.T * c.C, c)
    gemm(True, False, K, F, rows, 1, cols, K, dy, F, 0, g_kernel, F)
    if dx == NULL:
        return
    gemm(False, True, rows, K, F, 1, dy, F, kernel, F, 0, cols, K)
    for s in range(n):
        col2im_1d(dx + s * c.T * c.C, cols + s * c.OT * K, c)


cdef void _forward(Op* op, Py_ssize_t n, real* y) noexcept nogil:
    cdef const Conv1DCfg* c = <const Conv1DCfg*>op.cfg
    conv1d_forward(y, <real*>op.work, <const real*>op.x, <const real*>c.kernel,
                   <const real*>c.bias, n, c)


cdef void _backward(Op* op, Py_ssize_t n, real* dx) noexcept nogil:
    cdef const Conv1DCfg* c = <const Conv1DCfg*>op.cfg
    conv1d_backward(dx, <real*>op.grads[0], <real*>op.grads[1] if c.bias != NULL else NULL, op.state, <real*>op.work,
                    <const real*>op.dy, <const real*>op.x, <const real*>c.kernel, n, c)


cdef void conv1d_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _forward(op, n, <float*>op.y)
    else:
        _forward(op, n, <double*>op.y)


cdef void conv1d_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dtype == F32:
        _backward(op, n, <float*>op.dx)
    else:
        _backward(op, n, <double*>op.dx)


cdef class Conv1DOp:
    """Native 1-D convolution over arrays owned by the Python layer.

    kernel, g_kernel: (k, C, F); bias, g_bias: (F,) or None; all C-contiguous,
    one dtype.  The geometry (input length T, output length OT, stride,
    dilation, left padding) is validated by the caller: every output step's
    taps lie in [-pad, T + right padding)."""
    cdef Op op
    cdef Conv1DCfg cfg
    cdef tuple arrays

    def __cinit__(self, kernel, bias, g_kernel, g_bias, Py_ssize_t length,
                  Py_ssize_t out_length, Py_ssize_t stride, Py_ssize_t dilation,
                  Py_ssize_t pad_left):
        self.arrays = (kernel, bias, g_kernel, g_bias)
        cdef Conv1DCfg* c = &self.cfg
        c.k, c.C, c.F = kernel.shape
        c.T, c.OT, c.s, c.d, c.pad = length, out_length, stride, dilation, pad_left
        c.kernel = address(kernel)
        c.bias = address(bias) if bias is not None else NULL
        self.op.dtype = dtype_code(kernel)
        self.op.in_size = c.T * c.C
        self.op.out_size = c.OT * c.F
        self.op.work_size = c.OT * c.k * c.C
        self.op.state_size = c.F
        self.op.cfg = c
        self.op.forward = conv1d_op_forward
        self.op.backward = conv1d_op_backward
        declare_params(&self.op, ((kernel, g_kernel), (bias, g_bias)))

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
