# Fully connected layer: y = f(x @ W + b) with W (n_in, n_out), through BLAS,
# f an optional element-wise activation applied in place (the epilogue).
# The op fuses plain SGD into backward and, without an activation, can defer
# per-sample SGD over a window of samples (core.pxd: SampleWindow).
from libc.string cimport memcpy, memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, SampleWindow, F32, WINDOW, address, dtype_code, declare_params
from epilogue cimport IDENTITY, activate, activation_gradient, column_sums
from blas cimport gemm, gemv, ger


cdef struct DenseCfg:
    Py_ssize_t n_in
    Py_ssize_t n_out
    void* W
    void* b           # NULL without bias
    int activation    # the epilogue's element-wise kind (epilogue.pxd)
    double alpha


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
# gb (n_out)       = beta * gb + alpha * sum_rows(dy)    (skipped when gb is NULL;
#                    the sums are taken in totals (n_out), row after row)
# With gW = W, alpha = -lr, beta = 1 this is a plain SGD step done in place.
cdef void dense_backward(real* dx, real* gW, real* gb, double* totals, const real* x,
                         const real* dy, const real* W, Py_ssize_t rows, Py_ssize_t n_in,
                         Py_ssize_t n_out, real alpha, real beta) noexcept nogil:
    cdef Py_ssize_t j
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
        column_sums(totals, dy, rows, n_out, 1)
        for j in range(n_out):
            if beta == 0:
                gb[j] = <real>(alpha * totals[j])
            else:
                gb[j] = <real>(gb[j] + alpha * totals[j])


cdef void _forward(Op* op, Py_ssize_t n, real* y, const real* x) noexcept nogil:
    cdef const DenseCfg* c = <const DenseCfg*>op.cfg
    dense_forward(y, x, <const real*>c.W, <const real*>c.b,
                  n * op.in_size // c.n_in, c.n_in, c.n_out)
    if c.activation != IDENTITY:
        activate(y, y, n * op.out_size, c.activation, <real>c.alpha)


# dy is first multiplied in place by the epilogue's activation derivative
cdef void _backward(Op* op, Py_ssize_t n, real* dx, real* dy) noexcept nogil:
    cdef const DenseCfg* c = <const DenseCfg*>op.cfg
    cdef Py_ssize_t rows = n * op.in_size // c.n_in
    if c.activation != IDENTITY:
        activation_gradient(dy, dy, <const real*>op.y, n * op.out_size, c.activation,
                            <real>c.alpha)
    if op.sgd_lr != 0:
        dense_backward(dx, <real*>c.W, <real*>c.b, op.state, <const real*>op.x, dy,
                       <const real*>c.W, rows, c.n_in, c.n_out, <real>-op.sgd_lr, 1)
    else:
        dense_backward(dx, <real*>op.grads[0], <real*>op.grads[1] if c.b != NULL else NULL,
                       op.state, <const real*>op.x, dy,
                       <const real*>c.W, rows, c.n_in, c.n_out, 1, 0)


cdef void dense_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _forward(op, n, <float*>op.y, <const float*>op.x)
    else:
        _forward(op, n, <double*>op.y, <const double*>op.x)


cdef void dense_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dtype == F32:
        _backward(op, n, <float*>op.dx, <float*>op.dy)
    else:
        _backward(op, n, <double*>op.dx, <double*>op.dy)


# Deferred per-sample SGD.  Exact: with W_t = W_0 - sum_{j<t} lr_j x_j^T dy_j
# (and the same for b), the output for sample t is
#   x_t W_0 + b_0 - sum_{j<t} lr_j (x_t . x_j + 1) dy_j,
# so a window of K samples needs two GEMMs over W instead of a gemv and a
# rank-1 update per sample.  The window buffer holds
#   P (WINDOW, n_out) = X W_0 + b_0,  G (WINDOW, WINDOW) = X X^T + 1,
#   DY (WINDOW, n_out) = the output gradients of the window's samples.

# P (K, n_out) = X (K, n_in) @ W + b;  G (K, K; rows WINDOW apart) = X @ X^T (+ 1 with bias)
cdef void _window_begin(Op* op, real* scratch, const real* X, Py_ssize_t K) noexcept nogil:
    cdef const DenseCfg* c = <const DenseCfg*>op.cfg
    cdef real* P = scratch
    cdef real* G = scratch + WINDOW * c.n_out
    cdef Py_ssize_t t, j
    cdef real beta = 0
    if c.b != NULL:
        for t in range(K):
            memcpy(P + t * c.n_out, c.b, c.n_out * sizeof(real))
        beta = 1
    gemm(False, False, K, c.n_out, c.n_in, 1, X, c.n_in, <const real*>c.W, c.n_out,
         beta, P, c.n_out)
    gemm(False, True, K, K, c.n_in, 1, X, c.n_in, X, c.n_in, 0, G, WINDOW)
    if c.b != NULL:
        for t in range(K):
            for j in range(K):
                G[t * WINDOW + j] += 1


# DY[t - 1] = dy (the last step's gradient);
# y (n_out) = P[t] - sum_{j<t} rates[j] * G[t, j] * DY[j]
cdef void _window_output(Op* op, real* scratch, Py_ssize_t t, const double* rates,
                         real* y) noexcept nogil:
    cdef const DenseCfg* c = <const DenseCfg*>op.cfg
    cdef const real* P = scratch
    cdef const real* G = scratch + WINDOW * c.n_out
    cdef real* DY = scratch + WINDOW * (c.n_out + WINDOW)
    cdef Py_ssize_t j, o, n_out = c.n_out
    cdef real scale
    if t > 0:
        memcpy(DY + (t - 1) * n_out, op.dy, n_out * sizeof(real))
    memcpy(y, P + t * n_out, n_out * sizeof(real))
    for j in range(t):
        scale = <real>(rates[j] * G[t * WINDOW + j])
        for o in range(n_out):
            y[o] -= scale * DY[j * n_out + o]


# DY[K - 1] = dy;  W (n_in, n_out) -= X^T (K, n_in)^T @ (rates * DY) (K, n_out);
# b -= sum_t rates[t] DY[t]
cdef void _window_end(Op* op, real* scratch, const real* X, const double* rates,
                      Py_ssize_t K) noexcept nogil:
    cdef const DenseCfg* c = <const DenseCfg*>op.cfg
    cdef real* DY = scratch + WINDOW * (c.n_out + WINDOW)
    cdef real* b = <real*>c.b
    cdef Py_ssize_t t, o
    memcpy(DY + (K - 1) * c.n_out, op.dy, c.n_out * sizeof(real))
    for t in range(K):
        for o in range(c.n_out):
            DY[t * c.n_out + o] *= <real>rates[t]
    gemm(True, False, c.n_in, c.n_out, K, -1, X, c.n_in, DY, c.n_out, 1, <real*>c.W,
         c.n_out)
    if b != NULL:
        for t in range(K):
            for o in range(c.n_out):
                b[o] -= DY[t * c.n_out + o]


cdef void dense_window_begin(Op* op, void* scratch, const void* X,
                             Py_ssize_t K) noexcept nogil:
    if op.dtype == F32:
        _window_begin(op, <float*>scratch, <const float*>X, K)
    else:
        _window_begin(op, <double*>scratch, <const double*>X, K)


cdef void dense_window_output(Op* op, void* scratch, Py_ssize_t t,
                              const double* rates) noexcept nogil:
    if op.dtype == F32:
        _window_output(op, <float*>scratch, t, rates, <float*>op.y)
    else:
        _window_output(op, <double*>scratch, t, rates, <double*>op.y)


cdef void dense_window_end(Op* op, void* scratch, const void* X, const double* rates,
                           Py_ssize_t K) noexcept nogil:
    if op.dtype == F32:
        _window_end(op, <float*>scratch, <const float*>X, rates, K)
    else:
        _window_end(op, <double*>scratch, <const double*>X, rates, K)


cdef class DenseOp:
    """Native dense op over arrays owned by the Python layer.

    W, gW: (n_in, n_out); b, gb: (n_out,) or None; all C-contiguous, one dtype.
    `rows_per_sample` lets a sample be (..., n_in) rows, as (1, n_in).
    `activation` (an element-wise kind of epilogue.pxd, alpha its slope below
    0) is applied to the output in place.
    """
    cdef Op op
    cdef DenseCfg cfg
    cdef SampleWindow window
    cdef tuple arrays

    def __cinit__(self, W, b, gW, gb, Py_ssize_t rows_per_sample=1,
                  int activation=IDENTITY, double alpha=0.0):
        self.arrays = (W, b, gW, gb)
        self.cfg.n_in, self.cfg.n_out = W.shape
        self.cfg.W = address(W)
        self.cfg.b = address(b) if b is not None else NULL
        self.cfg.activation = activation
        self.cfg.alpha = alpha
        self.op.dtype = dtype_code(W)
        self.op.in_size = rows_per_sample * self.cfg.n_in
        self.op.out_size = rows_per_sample * self.cfg.n_out
        self.op.state_size = self.cfg.n_out          # the bias gradient's sums
        self.op.cfg = &self.cfg
        self.op.forward = dense_op_forward
        self.op.backward = dense_op_backward
        declare_params(&self.op, ((W, gW), (b, gb)))
        self.op.fuses_sgd = True
        if rows_per_sample == 1 and activation == IDENTITY:
            self.window.size = WINDOW * (2 * self.cfg.n_out + WINDOW)
            self.window.begin = dense_window_begin
            self.window.output = dense_window_output
            self.window.end = dense_window_end
            self.op.window = &self.window

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
