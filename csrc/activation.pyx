# Element-wise activations and the row-wise softmax.
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, r_exp, dtype_code
from epilogue cimport (IDENTITY, TANH, SIGMOID, RELU, LEAKY_RELU, SOFTMAX, activate,
                       activation_gradient)

KINDS = {'identity': IDENTITY, 'linear': IDENTITY, 'tanh': TANH, 'sigmoid': SIGMOID,
         'relu': RELU, 'leaky_relu': LEAKY_RELU, 'softmax': SOFTMAX}


# y (rows, width) = softmax of each row of x (rows, width)
cdef void softmax_forward(real* y, const real* x, Py_ssize_t rows,
                          Py_ssize_t width) noexcept nogil:
    cdef Py_ssize_t r, k
    cdef real top
    cdef double total
    for r in range(rows):
        top = x[r * width]
        for k in range(1, width):
            if x[r * width + k] > top:
                top = x[r * width + k]
        total = 0
        for k in range(width):
            y[r * width + k] = r_exp(x[r * width + k] - top)
            total += y[r * width + k]
        for k in range(width):
            y[r * width + k] = <real>(y[r * width + k] / total)


# dx (rows, width) = y * (dy - sum(dy * y)) for each row
cdef void softmax_backward(real* dx, const real* dy, const real* y, Py_ssize_t rows,
                           Py_ssize_t width) noexcept nogil:
    cdef Py_ssize_t r, k
    cdef double dot
    for r in range(rows):
        dot = 0
        for k in range(width):
            dot += dy[r * width + k] * y[r * width + k]
        for k in range(width):
            dx[r * width + k] = <real>(y[r * width + k] * (dy[r * width + k] - dot))


# y (count) = f(x); softmax works on rows of `width`
cdef void activation_forward(real* y, const real* x, Py_ssize_t count, int kind,
                             real alpha, Py_ssize_t width) noexcept nogil:
    if kind == SOFTMAX:
        softmax_forward(y, x, count // width, width)
    else:
        activate(y, x, count, kind, alpha)


# dx (count) = f'(x) * dy, using the saved output y
cdef void activation_backward(real* dx, const real* dy, const real* y, Py_ssize_t count,
                              int kind, real alpha, Py_ssize_t width) noexcept nogil:
    if kind == SOFTMAX:
        softmax_backward(dx, dy, y, count // width, width)
    else:
        activation_gradient(dx, dy, y, count, kind, alpha)


cdef struct ActivationCfg:
    int kind
    double alpha
    Py_ssize_t width


cdef void activation_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    cdef const ActivationCfg* c = <const ActivationCfg*>op.cfg
    if op.dtype == F32:
        activation_forward(<float*>op.y, <const float*>op.x, n * op.in_size, c.kind,
                           <float>c.alpha, c.width)
    else:
        activation_forward(<double*>op.y, <const double*>op.x, n * op.in_size, c.kind,
                           c.alpha, c.width)


cdef void activation_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    cdef const ActivationCfg* c = <const ActivationCfg*>op.cfg
    if op.dx == NULL:
        return
    if op.dtype == F32:
        activation_backward(<float*>op.dx, <const float*>op.dy, <const float*>op.y,
                            n * op.in_size, c.kind, <float>c.alpha, c.width)
    else:
        activation_backward(<double*>op.dx, <const double*>op.dy, <const double*>op.y,
                            n * op.in_size, c.kind, c.alpha, c.width)


cdef class ActivationOp:
    """Native activation over samples of `size` elements (softmax: last axis `width`)."""
    cdef Op op
    cdef ActivationCfg cfg

    def __cinit__(self, str name, dtype, Py_ssize_t size, Py_ssize_t width,
                  double alpha=0.0):
        self.cfg.kind = KINDS[name]
        self.cfg.alpha = alpha
        self.cfg.width = width
        self.op.dtype = dtype_code(dtype)
        self.op.in_size = size
        self.op.out_size = size
        self.op.cfg = &self.cfg
        self.op.forward = activation_op_forward
        self.op.backward = activation_op_backward

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
