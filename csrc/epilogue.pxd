# The element-wise work around a matrix product, shared by the dense, conv,
# conv+pool and activation ops: the bias and the activation applied to an
# op's output in place (the epilogue), the activation's derivative applied to
# the output gradient, and the column sums that give the bias gradient.
# Every activation here but softmax is element-wise and non-decreasing, so
# its derivative can be read from the output y alone and it commutes with a
# max pool.
from core cimport real, r_max, r_select, r_tanh, r_exp


cdef enum ActivationKind:
    IDENTITY = 0
    TANH = 1
    SIGMOID = 2
    RELU = 3
    LEAKY_RELU = 4
    SOFTMAX = 5             # row-wise: never in an epilogue


cdef inline real r_sigmoid(real v) noexcept nogil:
    cdef real e
    if v >= 0:
        return 1 / (1 + r_exp(-v))
    e = r_exp(v)
    return e / (1 + e)


# y (count) = f(x) for an element-wise kind (not SOFTMAX); y may be x
cdef inline void activate(real* y, const real* x, Py_ssize_t count, int kind,
                          real alpha) noexcept nogil:
    cdef Py_ssize_t i
    if kind == TANH:
        for i in range(count):
            y[i] = r_tanh(x[i])
    elif kind == SIGMOID:
        for i in range(count):
            y[i] = r_sigmoid(x[i])
    elif kind == RELU:
        for i in range(count):
            y[i] = r_max(x[i], <real>0)
    elif kind == LEAKY_RELU:
        for i in range(count):
            y[i] = r_select(x[i] > 0, x[i], alpha * x[i])
    elif y != x:
        for i in range(count):
            y[i] = x[i]


# dx (count) = f'(.) * dy for an element-wise kind, the derivative read from
# the output y (for relu and leaky relu, y > 0 exactly where the input was);
# dx may be dy
cdef inline void activation_gradient(real* dx, const real* dy, const real* y,
                                     Py_ssize_t count, int kind, real alpha) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g
    if kind == TANH:
        for i in range(count):
            dx[i] = dy[i] * (1 - y[i] * y[i])
    elif kind == SIGMOID:
        for i in range(count):
            dx[i] = dy[i] * y[i] * (1 - y[i])
    elif kind == RELU:
        for i in range(count):
            g = dy[i]                   # loaded unconditionally: a select, no branch
            dx[i] = r_select(y[i] > 0, g, <real>0)
    elif kind == LEAKY_RELU:
        for i in range(count):
            g = dy[i]
            dx[i] = r_select(y[i] > 0, g, alpha * g)
    elif dx != dy:
        for i in range(count):
            dx[i] = dy[i]


# y (rows, F) = f(y + bias), in place; bias (F) may be NULL
cdef inline void epilogue_forward(real* y, const real* bias, Py_ssize_t rows, Py_ssize_t F,
                                  int kind, real alpha) noexcept nogil:
    cdef Py_ssize_t r, f
    if bias != NULL:
        for r in range(rows):
            for f in range(F):
                y[r * F + f] += bias[f]
    activate(y, y, rows * F, kind, alpha)


# totals (F) = the column sums of a (rows, F): summed in `real` over blocks of
# `block` rows, the blocks' sums added up in double (block 1: every value
# added in double, row after row).  The inner loops run along a row, so they
# vectorize.  The bits depend on `block`; each op keeps the one it has.
cdef inline void column_sums(double* totals, const real* a, Py_ssize_t rows,
                             Py_ssize_t F, Py_ssize_t block) noexcept nogil:
    cdef Py_ssize_t r, r0, j, j0, width
    cdef real partial[256]
    for j in range(F):
        totals[j] = 0
    if block <= 1:
        for r in range(rows):
            for j in range(F):
                totals[j] += a[r * F + j]
        return
    for j0 in range(0, F, 256):
        width = min(256, F - j0)
        r0 = 0
        while r0 < rows:
            for j in range(width):
                partial[j] = 0
            for r in range(r0, min(r0 + block, rows)):
                for j in range(width):
                    partial[j] += a[r * F + j0 + j]
            for j in range(width):
                totals[j0 + j] += partial[j]
            r0 += block
