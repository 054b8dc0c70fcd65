# 2-D convolution over NHWC batches as im2col + BLAS GEMM (col2im for dx).
# The kernel is (kh, kw, C, F); an im2col row holds one output position's
# receptive field in the same (kh, kw, C) order, so the kernel is simply a
# (K = kh*kw*C, F) matrix and a whole batch is one GEMM.
import numpy as np
from libc.string cimport memcpy, memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, address, dtype_code, declare_params
from epilogue cimport IDENTITY, activation_gradient, column_sums, epilogue_forward
from blas cimport gemm
from im2col cimport ConvCfg, GROUP_BYTES, col2im_row, im2col_row, set_geometry


# cols (OH*OW, kh*kw*C) = the receptive field of every output position of x (H, W, C)
cdef void im2col(real* cols, const real* x, const ConvCfg* c) noexcept nogil:
    cdef Py_ssize_t oh, ow, row = c.kh * c.kw * c.C
    for oh in range(c.OH):
        for ow in range(c.OW):
            im2col_row(cols + (oh * c.OW + ow) * row, x, c, oh, ow)


# x (H, W, C) = sum of the rows of cols (OH*OW, kh*kw*C) put back where im2col took them
cdef void col2im(real* x, const real* cols, const ConvCfg* c) noexcept nogil:
    cdef Py_ssize_t oh, ow, row = c.kh * c.kw * c.C
    memset(x, 0, c.H * c.W * c.C * sizeof(real))
    for oh in range(c.OH):
        for ow in range(c.OW):
            col2im_row(x, cols + (oh * c.OW + ow) * row, c, oh, ow)


# im2col / col2im of n samples.  Serial: GEMM dominates and gets the threads
# (BLAS); an OpenMP loop over the samples here would compete with them.
cdef void im2col_batch(real* cols, const real* x, Py_ssize_t n,
                       const ConvCfg* c) noexcept nogil:
    cdef Py_ssize_t s, x_size = c.H * c.W * c.C, col_size = c.OH * c.OW * c.kh * c.kw * c.C
    for s in range(n):
        im2col(cols + s * col_size, x + s * x_size, c)


cdef void col2im_batch(real* x, const real* cols, Py_ssize_t n,
                       const ConvCfg* c) noexcept nogil:
    cdef Py_ssize_t s, x_size = c.H * c.W * c.C, col_size = c.OH * c.OW * c.kh * c.kw * c.C
    for s in range(n):
        col2im(x + s * x_size, cols + s * col_size, c)


# y (n, OH, OW, F) = f(conv(x (n, H, W, C), kernel (kh, kw, C, F)) + bias (F)), f the
# epilogue's activation; cols: scratch (group, OH*OW, K).  Samples go in groups of
# `group`, so that a group's columns and outputs stay in cache from the im2col to
# the GEMM to the epilogue.
cdef void conv2d_forward(real* y, real* cols, const real* x, const real* kernel,
                         const real* bias, Py_ssize_t n, Py_ssize_t group,
                         const ConvCfg* c) noexcept nogil:
    cdef Py_ssize_t s = 0, g, rows, K = c.kh * c.kw * c.C, F = c.F
    cdef const real* a
    while s < n:
        g = min(group, n - s)
        rows = g * c.OH * c.OW
        a = x + s * c.H * c.W * c.C
        if not c.direct:
            im2col_batch(cols, a, g, c)
            a = cols
        gemm(False, False, rows, F, K, 1, a, K, kernel, F, 0, y, F)
        epilogue_forward(y, bias, rows, F, c.activation, <real>c.alpha)
        y += rows * F
        s += g


# g_kernel (K, F) = im2col(x)^T @ dy;  g_bias (F) = sum of dy (n*OH*OW, F) over rows
# (in totals (F), blocks of 64 rows); dx (n, H, W, C) = col2im(dy @ kernel^T), skipped
# when dx is NULL.  dy is first multiplied in place by the epilogue's activation
# derivative, read from y (this op's output).  cols: scratch (group, OH*OW, K).
# The samples go in groups of `group` as in forward: each group's im2col, its
# kernel-gradient GEMM (the first overwrites g_kernel, the others add to it, so
# g_kernel sums the groups in order) and its col2im.  A direct convolution needs
# no columns and takes the whole batch in one group.
cdef void conv2d_backward(real* dx, real* g_kernel, real* g_bias, double* totals, real* cols,
                          real* dy, const real* x, const real* y, const real* kernel,
                          Py_ssize_t n, Py_ssize_t group, const ConvCfg* c) noexcept nogil:
    cdef Py_ssize_t j, s = 0, g, rows, K = c.kh * c.kw * c.C, P = c.OH * c.OW
    cdef Py_ssize_t x_size = c.H * c.W * c.C
    cdef const real* a
    if c.activation != IDENTITY:
        activation_gradient(dy, dy, y, n * P * c.F, c.activation, <real>c.alpha)
    if g_bias != NULL:
        column_sums(totals, dy, n * P, c.F, 64)
        for j in range(c.F):
            g_bias[j] = <real>totals[j]
    if c.direct:
        group = n
    while s < n:
        g = min(group, n - s)
        rows = g * P
        a = x + s * x_size
        if not c.direct:
            im2col_batch(cols, a, g, c)
            a = cols
        gemm(True, False, K, c.F, rows, 1, a, K, dy + s * P * c.F, c.F, 0 if s == 0 else 1,
             g_kernel, c.F)
        if dx != NULL:
            if c.direct:
                gemm(False, True, rows, K, c.F, 1, dy, c.F, kernel, c.F, 0, dx, K)
            else:
                gemm(False, True, rows, K, c.F, 1, dy + s * P * c.F, c.F, kernel, c.F, 0,
                     cols, K)
                col2im_batch(dx + s * x_size, cols, g, c)
        s += g


cdef void _forward(Op* op, Py_ssize_t n, real* y) noexcept nogil:
    cdef const ConvCfg* c = <const ConvCfg*>op.cfg
    conv2d_forward(y, <real*>op.work, <const real*>op.x, <const real*>c.kernel,
                   <const real*>c.bias, n, op.work_group, c)


cdef void _backward(Op* op, Py_ssize_t n, real* dx) noexcept nogil:
    cdef const ConvCfg* c = <const ConvCfg*>op.cfg
    cdef real* g_bias = <real*>op.grads[1] if c.bias != NULL else NULL
    conv2d_backward(dx, <real*>op.grads[0], g_bias, op.state, <real*>op.work, <real*>op.dy,
                    <const real*>op.x, <const real*>op.y, <const real*>c.kernel, n,
                    op.work_group, c)


cdef void conv_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _forward(op, n, <float*>op.y)
    else:
        _forward(op, n, <double*>op.y)


cdef void conv_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dtype == F32:
        _backward(op, n, <float*>op.dx)
    else:
        _backward(op, n, <double*>op.dx)


cdef class ConvOp:
    """Native 2-D convolution over arrays owned by the Python layer.

    kernel, g_kernel: (kh, kw, C, F); bias, g_bias: (F,) or None; all
    C-contiguous, one dtype.  The geometry (input (H, W), output (OH, OW),
    strides and top/left padding) is validated by the caller.  `activation`
    (an element-wise kind of epilogue.pxd, alpha its slope below 0) is applied
    to the output in place (and its derivative to the output gradient).
    """
    cdef Op op
    cdef ConvCfg cfg
    cdef tuple arrays

    def __cinit__(self, kernel, bias, g_kernel, g_bias, input_hw, output_hw, strides,
                  padding_top_left, int activation=IDENTITY, double alpha=0.0):
        self.arrays = (kernel, bias, g_kernel, g_bias)
        cdef ConvCfg* c = &self.cfg
        set_geometry(c, kernel, bias, input_hw, output_hw, strides,
                     padding_top_left, activation, alpha)
        c.direct = (c.kh == 1 and c.kw == 1 and c.sh == 1 and c.sw == 1 and c.pt == 0
                    and c.pl == 0 and c.OH == c.H and c.OW == c.W)
        self.op.dtype = dtype_code(kernel)
        self.op.in_size = c.H * c.W * c.C
        self.op.out_size = c.OH * c.OW * c.F
        self.op.state_size = c.F                       # the bias gradient's sums
        self.op.work_size = 0 if c.direct else c.OH * c.OW * c.kh * c.kw * c.C
        # groups of samples whose columns and outputs take about GROUP_BYTES; the
        # plan sizes the scratch for one group
        self.op.work_group = max(1, GROUP_BYTES // ((self.op.work_size + self.op.out_size)
                                                    * kernel.itemsize))
        self.op.cfg = c
        self.op.forward = conv_op_forward
        self.op.backward = conv_op_backward
        declare_params(&self.op, ((kernel, g_kernel), (bias, g_bias)))

    @property
    def direct(self):
        """True for a 1x1 convolution with stride 1 and no padding: x is its own im2col."""
        return bool(self.cfg.direct)

    @property
    def work_group(self):
        """Samples per group: forward and backward work through the batch in
        groups of this many (their scratch sized for one group)."""
        return self.op.work_group

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)

    def _check(self, a, Py_ssize_t size, str what):
        if (a.dtype != (np.float32 if self.op.dtype == F32 else np.float64)
                or not a.flags.c_contiguous or a.ndim != 2 or a.shape[1] != size):
            raise ValueError(f"{what}: expected a C-contiguous (n, {size}) array of the "
                             f"op's dtype, got {a.dtype} {a.shape}")

    def im2col(self, x, cols):
        """cols (n, OH*OW*K) = im2col of x (n, H*W*C), as forward does (for tests
        and benchmarks)."""
        self._check(x, self.op.in_size, "x")
        self._check(cols, self.op.work_size, "cols")
        if cols.shape[0] != x.shape[0]:
            raise ValueError("x and cols have different batch sizes")
        cdef Py_ssize_t n = x.shape[0]
        cdef void* a = address(cols)
        cdef void* b = address(x)
        with nogil:
            if self.op.dtype == F32:
                im2col_batch(<float*>a, <const float*>b, n, &self.cfg)
            else:
                im2col_batch(<double*>a, <const double*>b, n, &self.cfg)

    def col2im(self, cols, dx):
        """dx (n, H*W*C) = col2im of cols (n, OH*OW*K), as backward does."""
        self._check(dx, self.op.in_size, "dx")
        self._check(cols, self.op.work_size, "cols")
        if cols.shape[0] != dx.shape[0]:
            raise ValueError("dx and cols have different batch sizes")
        cdef Py_ssize_t n = dx.shape[0]
        cdef void* a = address(dx)
        cdef void* b = address(cols)
        with nogil:
            if self.op.dtype == F32:
                col2im_batch(<float*>a, <const float*>b, n, &self.cfg)
            else:
                col2im_batch(<double*>a, <const double*>b, n, &self.cfg)
