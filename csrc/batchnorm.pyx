# Batch normalization over the last (channel / feature) axis: a sample of
# in_size elements is in_size / C rows of C channels.  Training uses the
# statistics of the batch and updates the moving statistics as Keras does
# (moving = momentum * moving + (1 - momentum) * batch, biased variance);
# inference uses the moving statistics.
from libc.math cimport sqrt
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, address, dtype_code, declare_params
from epilogue cimport column_sums


cdef struct BatchNormCfg:
    Py_ssize_t C
    double momentum
    double epsilon
    void* gamma
    void* beta
    void* moving_mean
    void* moving_var


# The op's state (4 C + 1 float64 values, owned by the plan that runs it):
#   mean, inv_std (C): the statistics the last forward normalized with
#   sum_dy, sum_dy_xhat (C): scratch for backward
#   batch_stats (1): 1 when the last forward used batch statistics
cdef inline double* state_mean(Op* op, Py_ssize_t C) noexcept nogil:
    return op.state

cdef inline double* state_inv_std(Op* op, Py_ssize_t C) noexcept nogil:
    return op.state + C

cdef inline double* state_sums(Op* op, Py_ssize_t C) noexcept nogil:
    return op.state + 2 * C

cdef inline double* state_batch_stats(Op* op, Py_ssize_t C) noexcept nogil:
    return op.state + 4 * C


# mean, inv_std (C) = batch statistics of x (rows, C); moving_mean, moving_var (C) updated
cdef void batchnorm_statistics(double* mean, double* inv_std, real* moving_mean,
                               real* moving_var, const real* x, Py_ssize_t rows,
                               Py_ssize_t C, double momentum, double epsilon) noexcept nogil:
    cdef Py_ssize_t r, k
    cdef double d
    column_sums(mean, x, rows, C, 1)
    for k in range(C):
        mean[k] /= rows
        inv_std[k] = 0
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
    cdef const BatchNormCfg* c = <const BatchNormCfg*>op.cfg
    cdef Py_ssize_t k, rows = n * op.in_size // c.C
    cdef real* moving_var = <real*>c.moving_var
    cdef double* mean = state_mean(op, c.C)
    cdef double* inv_std = state_inv_std(op, c.C)
    state_batch_stats(op, c.C)[0] = training
    if training:
        batchnorm_statistics(mean, inv_std, <real*>c.moving_mean, moving_var, x, rows,
                             c.C, c.momentum, c.epsilon)
    else:
        for k in range(c.C):
            mean[k] = (<real*>c.moving_mean)[k]
            inv_std[k] = 1 / sqrt(moving_var[k] + c.epsilon)
    batchnorm_forward(y, x, mean, inv_std, <const real*>c.gamma, <const real*>c.beta,
                      rows, c.C)


cdef void _backward(Op* op, Py_ssize_t n, real* dx, const real* x) noexcept nogil:
    cdef const BatchNormCfg* c = <const BatchNormCfg*>op.cfg
    cdef Py_ssize_t rows = n * op.in_size // c.C
    cdef double* sums = state_sums(op, c.C)
    batchnorm_backward(dx, <real*>op.grads[0], <real*>op.grads[1], sums, sums + c.C, x,
                       <const real*>op.dy, state_mean(op, c.C), state_inv_std(op, c.C),
                       <const real*>c.gamma, rows, c.C, state_batch_stats(op, c.C)[0] != 0)


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
    moving_mean, moving_var: (C,) arrays of the op's dtype."""
    cdef Op op
    cdef BatchNormCfg cfg
    cdef tuple arrays

    def __cinit__(self, Py_ssize_t size, gamma, beta, g_gamma, g_beta, moving_mean,
                  moving_var, double momentum, double epsilon):
        self.arrays = (gamma, beta, g_gamma, g_beta, moving_mean, moving_var)
        cdef BatchNormCfg* c = &self.cfg
        c.C = gamma.shape[0]
        c.momentum = momentum
        c.epsilon = epsilon
        c.gamma = address(gamma)
        c.beta = address(beta)
        c.moving_mean = address(moving_mean)
        c.moving_var = address(moving_var)
        self.op.dtype = dtype_code(gamma)
        self.op.in_size = size
        self.op.out_size = size
        self.op.state_size = 4 * c.C + 1
        self.op.cfg = c
        self.op.forward = batchnorm_op_forward
        self.op.backward = batchnorm_op_backward
        self.op.whole_batch = True
        declare_params(&self.op, ((gamma, g_gamma), (beta, g_beta)))

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
