# Layer normalization over the last axis: every row of D values is shifted to
# mean 0 and scaled to variance 1 (over the row, biased, plus epsilon), then
# scaled by gamma (D) and shifted by beta (D).  Means and variances are
# accumulated in double, in eight interleaved partial sums (reduce.pxd).
from libc.math cimport sqrt
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, address, dtype_code, declare_params
from reduce cimport sum_d, sum_sq_d


cdef struct LayerNormCfg:
    Py_ssize_t R, D           # rows per sample, row length
    double epsilon
    void* gamma
    void* beta


# y (rows, D) = (x - mean) * rstd * gamma + beta per row of x (rows, D);
# stats (rows, 2) = each row's (mean, rstd), kept for backward
cdef void layernorm_forward(real* y, real* stats, const real* x, const real* gamma,
                            const real* beta, Py_ssize_t rows, Py_ssize_t D,
                            double epsilon) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef double mean, rstd
    cdef const real* row
    for r in range(rows):
        row = x + r * D
        mean = sum_d(row, D) / D
        rstd = 1 / sqrt(sum_sq_d(row, mean, D) / D + epsilon)
        for j in range(D):
            y[r * D + j] = <real>((row[j] - mean) * rstd) * gamma[j] + beta[j]
        stats[2 * r] = <real>mean
        stats[2 * r + 1] = <real>rstd


# g_gamma (D) = sum over rows of dy * xhat, g_beta (D) = sum of dy;
# dx (rows, D) = rstd * (g - mean(g) - xhat * mean(g * xhat)) with
# g = dy * gamma, skipped when dx is NULL.  totals: (4D) doubles, the two
# sums and a row's g and g * xhat
cdef void layernorm_backward(real* dx, real* g_gamma, real* g_beta, double* totals,
                             const real* dy, const real* x, const real* stats,
                             const real* gamma, Py_ssize_t rows, Py_ssize_t D) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef double mean, rstd, xhat, g, mean_g, mean_gx
    cdef double* gs = totals + 2 * D
    cdef double* gxs = totals + 3 * D
    cdef const real* xr
    cdef const real* dyr
    for j in range(2 * D):
        totals[j] = 0
    for r in range(rows):
        mean = stats[2 * r]
        rstd = stats[2 * r + 1]
        xr = x + r * D
        dyr = dy + r * D
        for j in range(D):
            xhat = (xr[j] - mean) * rstd
            g = dyr[j] * gamma[j]
            totals[j] += dyr[j] * xhat
            totals[D + j] += dyr[j]
            gs[j] = g
            gxs[j] = g * xhat
        if dx == NULL:
            continue
        mean_g = sum_d(gs, D) / D
        mean_gx = sum_d(gxs, D) / D
        for j in range(D):
            xhat = (xr[j] - mean) * rstd
            dx[r * D + j] = <real>(rstd * (gs[j] - mean_g - xhat * mean_gx))
    for j in range(D):
        g_gamma[j] = <real>totals[j]
        g_beta[j] = <real>totals[D + j]


cdef void _forward(Op* op, Py_ssize_t n, real* y) noexcept nogil:
    cdef const LayerNormCfg* c = <const LayerNormCfg*>op.cfg
    layernorm_forward(y, <real*>op.cache, <const real*>op.x, <const real*>c.gamma,
                      <const real*>c.beta, n * c.R, c.D, c.epsilon)


cdef void _backward(Op* op, Py_ssize_t n, real* dx) noexcept nogil:
    cdef const LayerNormCfg* c = <const LayerNormCfg*>op.cfg
    layernorm_backward(dx, <real*>op.grads[0], <real*>op.grads[1], op.state, <const real*>op.dy,
                       <const real*>op.x, <const real*>op.cache, <const real*>c.gamma,
                       n * c.R, c.D)


cdef void layernorm_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _forward(op, n, <float*>op.y)
    else:
        _forward(op, n, <double*>op.y)


cdef void layernorm_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dtype == F32:
        _backward(op, n, <float*>op.dx)
    else:
        _backward(op, n, <double*>op.dx)


cdef class LayerNormOp:
    """Native layer normalization of samples of `size` values, in rows of
    len(gamma); gamma, beta and their gradients: (D,) C-contiguous arrays of
    one dtype."""
    cdef Op op
    cdef LayerNormCfg cfg
    cdef tuple arrays

    def __cinit__(self, Py_ssize_t size, gamma, beta, g_gamma, g_beta, double epsilon):
        self.arrays = (gamma, beta, g_gamma, g_beta)
        cdef LayerNormCfg* c = &self.cfg
        c.D = gamma.shape[0]
        c.R = size // c.D
        c.epsilon = epsilon
        c.gamma, c.beta = address(gamma), address(beta)
        self.op.dtype = dtype_code(gamma)
        self.op.in_size = size
        self.op.out_size = size
        self.op.cache_size = 2 * c.R
        self.op.state_size = 4 * c.D
        self.op.cfg = c
        self.op.forward = layernorm_op_forward
        self.op.backward = layernorm_op_backward
        declare_params(&self.op, ((gamma, g_gamma), (beta, g_beta)))

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
