# Batch normalization over the last (channel / feature) axis: a sample of
# in_size elements is in_size / C rows of C channels.  Training uses the
# statistics of the batch and updates the moving statistics as Keras does
# (moving = momentum * moving + (1 - momentum) * batch, biased variance);
# inference uses the moving statistics.
from libc.math cimport sqrt
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, address, dtype_code, sgd_step


cdef struct BatchNormCfg:
    Py_ssize_t C
    double momentum
    double epsilon
    void* gamma
    void* beta
    void* g_gamma
    void* g_beta
    void* moving_mean
    void* moving_var
    double* mean           # statistics used by the last forward (C)
    double* inv_std
    double* sum_dy         # scratch for backward (C)
    double* sum_dy_xhat
    bint batch_stats       # the last forward normalized with batch statistics


# mean, inv_std (C) = batch statistics of x (rows, C); moving_mean, moving_var (C) updated
cdef void batchnorm_statistics(double* mean, double* inv_std, real* moving_mean,
                               real* moving_var, const real* x, Py_ssize_t rows,
                               Py_ssize_t C, double momentum, double epsilon) noexcept nogil:
    cdef Py_ssize_t r, k
    cdef double d
    for k in range(C):
        mean[k] = 0
        inv_std[k] = 0
    for r in range(rows):
        for k in range(C):
            mean[k] += x[r * C + k]
    for k in range(C):
        mean[k] /= rows
    for r in range(rows):
        for k in range(C):
            d = x[r * C + k] - mean[k]
            inv_std[k] += d * d
    for k in range(C):
        d = inv_std[k] / rows                  # the (biased) batch variance
        moving_mean[k] = <real>(momentum * moving_mean[k] + (1 - momentum) * mean[k])
        moving_var[k] = <real>(momentum * moving_var[k] + (1 - momentum) * d)
        inv_std[k] = 1 / sqrt(d + epsilon)


# y (rows, C) = gamma * (x - mean) * inv_std + beta
cdef void batchnorm_forward(real* y, const real* x, const double* mean,
                            const double* inv_std, const real* gamma, const real* beta,
                            Py_ssize_t rows, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t r, k
    for r in range(rows):
        for k in range(C):
            y[r * C + k] = <real>(gamma[k] * (x[r * C + k] - mean[k]) * inv_std[k] + beta[k])


# g_gamma (C) = sum(dy * xhat), g_beta (C) = sum(dy) with xhat = (x - mean) * inv_std;
# dx (rows, C) = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)) with batch
# statistics, gamma * inv_std * dy with fixed ones; skipped when dx is NULL
cdef void batchnorm_backward(real* dx, real* g_gamma, real* g_beta, double* sum_dy,
                             double* sum_dy_xhat, const real* x, const real* dy,
                             const double* mean, const double* inv_std, const real* gamma,
                             Py_ssize_t rows, Py_ssize_t C, bint batch_stats) noexcept nogil:
    cdef Py_ssize_t r, k
    cdef double xhat
    for k in range(C):
        sum_dy[k] = 0
        sum_dy_xhat[k] = 0
    for r in range(rows):
        for k in range(C):
            sum_dy[k] += dy[r * C + k]
            sum_dy_xhat[k] += dy[r * C + k] * (x[r * C + k] - mean[k]) * inv_std[k]
    for k in range(C):
        g_gamma[k] = <real>sum_dy_xhat[k]
        g_beta[k] = <real>sum_dy[k]
    if dx == NULL:
        return
    if not batch_stats:
        for r in range(rows):
            for k in range(C):
                dx[r * C + k] = <real>(gamma[k] * inv_std[k] * dy[r * C + k])
        return
    for r in range(rows):
        for k in range(C):
            xhat = (x[r * C + k] - mean[k]) * inv_std[k]
            dx[r * C + k] = <real>(gamma[k] * inv_std[k] * (
                dy[r * C + k] - (sum_dy[k] + xhat * sum_dy_xhat[k]) / rows))


cdef void _forward(Op* op, Py_ssize_t n, bint training, real* y, const real* x) noexcept nogil:
    cdef BatchNormCfg* c = <BatchNormCfg*>op.cfg
    cdef Py_ssize_t k, rows = n * op.in_size // c.C
    cdef real* moving_var = <real*>c.moving_var
    c.batch_stats = training
    if training:
        batchnorm_statistics(c.mean, c.inv_std, <real*>c.moving_mean, moving_var, x, rows,
                             c.C, c.momentum, c.epsilon)
    else:
        for k in range(c.C):
            c.mean[k] = (<real*>c.moving_mean)[k]
            c.inv_std[k] = 1 / sqrt(moving_var[k] + c.epsilon)
    batchnorm_forward(y, x, c.mean, c.inv_std, <const real*>c.gamma, <const real*>c.beta,
                      rows, c.C)


cdef void _backward(Op* op, Py_ssize_t n, real* dx, const real* x) noexcept nogil:
    cdef BatchNormCfg* c = <BatchNormCfg*>op.cfg
    cdef Py_ssize_t rows = n * op.in_size // c.C
    cdef real* gamma = <real*>c.gamma
    cdef real* beta = <real*>c.beta
    cdef real* g_gamma = <real*>c.g_gamma
    cdef real* g_beta = <real*>c.g_beta
    batchnorm_backward(dx, g_gamma, g_beta, c.sum_dy, c.sum_dy_xhat, x,
                       <const real*>op.dy, c.mean, c.inv_std, gamma, rows, c.C,
                       c.batch_stats)
    if op.sgd_lr != 0:
        # fused SGD, after dx used the old gamma
        sgd_step(gamma, g_gamma, c.C, <real>op.sgd_lr)
        sgd_step(beta, g_beta, c.C, <real>op.sgd_lr)


cdef void batchnorm_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _forward(op, n, training, <float*>op.y, <const float*>op.x)
    else:
        _forward(op, n, training, <double*>op.y, <const double*>op.x)


cdef void batchnorm_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dtype == F32:
        _backward(op, n, <float*>op.dx, <const float*>op.x)
    else:
        _backward(op, n, <double*>op.dx, <const double*>op.x)


cdef class BatchNormOp:
    """Native batch normalization of samples of `size` elements over their
    last axis of C = gamma.size channels.  gamma, beta, g_gamma, g_beta,
    moving_mean, moving_var: (C,) arrays of the op's dtype; scratch: a
    float64 array (4, C) for the statistics of the last forward."""
    cdef Op op
    cdef BatchNormCfg cfg
    cdef tuple arrays

    def __cinit__(self, Py_ssize_t size, gamma, beta, g_gamma, g_beta, moving_mean,
                  moving_var, scratch, double momentum, double epsilon):
        self.arrays = (gamma, beta, g_gamma, g_beta, moving_mean, moving_var, scratch)
        cdef BatchNormCfg* c = &self.cfg
        cdef double* stats = <double*>address(scratch)
        c.C = gamma.shape[0]
        c.momentum = momentum
        c.epsilon = epsilon
        c.gamma = address(gamma)
        c.beta = address(beta)
        c.g_gamma = address(g_gamma)
        c.g_beta = address(g_beta)
        c.moving_mean = address(moving_mean)
        c.moving_var = address(moving_var)
        c.mean = stats
        c.inv_std = stats + c.C
        c.sum_dy = stats + 2 * c.C
        c.sum_dy_xhat = stats + 3 * c.C
        c.batch_stats = False
        self.op.dtype = dtype_code(gamma)
        self.op.in_size = size
        self.op.out_size = size
        self.op.cfg = c
        self.op.forward = batchnorm_op_forward
        self.op.backward = batchnorm_op_backward

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
