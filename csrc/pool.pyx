# Max and average pooling over NHWC batches (global average pooling is an
# average pool whose window is the whole image).  Windows that overlap the
# padding only use the elements inside the image.
from libc.string cimport memcpy, memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, dtype_code, r_max

cdef enum PoolKind:
    MAX = 0
    AVG = 1

KINDS = {'max': MAX, 'avg': AVG}


cdef struct PoolCfg:
    int kind
    Py_ssize_t H, W, C             # input sample
    Py_ssize_t OH, OW              # output sample (OH, OW, C)
    Py_ssize_t ph, pw, sh, sw      # window size and strides
    Py_ssize_t pt, pl              # padding at the top and the left


# the window of output (oh, ow) clipped to the image: rows [i0, i1), columns [j0, j1)
cdef inline void _window(const PoolCfg* c, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t* i0,
                         Py_ssize_t* i1, Py_ssize_t* j0, Py_ssize_t* j1) noexcept nogil:
    cdef Py_ssize_t top = oh * c.sh - c.pt, left = ow * c.sw - c.pl
    i0[0] = max(top, 0)
    i1[0] = min(top + c.ph, c.H)
    j0[0] = max(left, 0)
    j1[0] = min(left + c.pw, c.W)


# y (OH, OW, C) = max of x (H, W, C) over each window
cdef void maxpool_forward(real* y, const real* x, const PoolCfg* c) noexcept nogil:
    cdef Py_ssize_t oh, ow, ih, iw, k, at, i0, i1, j0, j1, C = c.C
    cdef real* out
    for oh in range(c.OH):
        for ow in range(c.OW):
            _window(c, oh, ow, &i0, &i1, &j0, &j1)
            out = y + (oh * c.OW + ow) * C
            at = (i0 * c.W + j0) * C
            for k in range(C):
                out[k] = x[at + k]
            for ih in range(i0, i1):
                for iw in range(j0, j1):
                    at = (ih * c.W + iw) * C
                    for k in range(C):
                        out[k] = r_max(out[k], x[at + k])


# dx (H, W, C) = dy (OH, OW, C) routed to the first element of each window (in
# row-major order) equal to its maximum y; pending (C): scratch.  Recomputing
# the position keeps both passes branch-free, so the compiler vectorizes them.
cdef void maxpool_backward(real* dx, real* pending, const real* dy, const real* x,
                           const real* y, const PoolCfg* c) noexcept nogil:
    cdef Py_ssize_t oh, ow, ih, iw, k, at, o, i0, i1, j0, j1, C = c.C
    cdef real g
    memset(dx, 0, c.H * c.W * C * sizeof(real))
    for oh in range(c.OH):
        for ow in range(c.OW):
            _window(c, oh, ow, &i0, &i1, &j0, &j1)
            o = (oh * c.OW + ow) * C
            memcpy(pending, dy + o, C * sizeof(real))
            for ih in range(i0, i1):
                for iw in range(j0, j1):
                    at = (ih * c.W + iw) * C
                    for k in range(C):
                        g = pending[k] if x[at + k] == y[o + k] else 0
                        dx[at + k] += g
                        pending[k] -= g


# y (OH, OW, C) = mean of x (H, W, C) over each window (elements inside the image)
cdef void avgpool_forward(real* y, const real* x, const PoolCfg* c) noexcept nogil:
    cdef Py_ssize_t oh, ow, ih, iw, k, at, i0, i1, j0, j1, C = c.C
    cdef real* out
    cdef real scale
    for oh in range(c.OH):
        for ow in range(c.OW):
            _window(c, oh, ow, &i0, &i1, &j0, &j1)
            out = y + (oh * c.OW + ow) * C
            memset(out, 0, C * sizeof(real))
            for ih in range(i0, i1):
                for iw in range(j0, j1):
                    at = (ih * c.W + iw) * C
                    for k in range(C):
                        out[k] += x[at + k]
            scale = <real>1.0 / ((i1 - i0) * (j1 - j0))
            for k in range(C):
                out[k] *= scale


# dx (H, W, C) = dy (OH, OW, C) spread evenly over each window
cdef void avgpool_backward(real* dx, const real* dy, const PoolCfg* c) noexcept nogil:
    cdef Py_ssize_t oh, ow, ih, iw, k, at, i0, i1, j0, j1, C = c.C
    cdef const real* g
    cdef real scale
    memset(dx, 0, c.H * c.W * C * sizeof(real))
    for oh in range(c.OH):
        for ow in range(c.OW):
            _window(c, oh, ow, &i0, &i1, &j0, &j1)
            g = dy + (oh * c.OW + ow) * C
            scale = <real>1.0 / ((i1 - i0) * (j1 - j0))
            for ih in range(i0, i1):
                for iw in range(j0, j1):
                    at = (ih * c.W + iw) * C
                    for k in range(C):
                        dx[at + k] += g[k] * scale


cdef void _sample_forward(Op* op, Py_ssize_t s, real* y, const real* x) noexcept nogil:
    cdef const PoolCfg* c = <const PoolCfg*>op.cfg
    if c.kind == MAX:
        maxpool_forward(y + s * op.out_size, x + s * op.in_size, c)
    else:
        avgpool_forward(y + s * op.out_size, x + s * op.in_size, c)


cdef void _sample_backward(Op* op, Py_ssize_t s, real* dx, const real* dy) noexcept nogil:
    cdef const PoolCfg* c = <const PoolCfg*>op.cfg
    if c.kind == MAX:
        maxpool_backward(dx + s * op.in_size, <real*>op.work + s * op.work_size,
                         dy + s * op.out_size, <const real*>op.x + s * op.in_size,
                         <const real*>op.y + s * op.out_size, c)
    else:
        avgpool_backward(dx + s * op.in_size, dy + s * op.out_size, c)


# serial over the samples: pooling is a few per cent of a CNN step, and an
# OpenMP loop here only competed with the BLAS threads of the convolutions
cdef void _forward(Op* op, Py_ssize_t n, real* y, const real* x) noexcept nogil:
    cdef Py_ssize_t s
    for s in range(n):
        _sample_forward(op, s, y, x)


cdef void _backward(Op* op, Py_ssize_t n, real* dx, const real* dy) noexcept nogil:
    cdef Py_ssize_t s
    for s in range(n):
        _sample_backward(op, s, dx, dy)


cdef void pool_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _forward(op, n, <float*>op.y, <const float*>op.x)
    else:
        _forward(op, n, <double*>op.y, <const double*>op.x)


cdef void pool_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dx == NULL:
        return
    if op.dtype == F32:
        _backward(op, n, <float*>op.dx, <const float*>op.dy)
    else:
        _backward(op, n, <double*>op.dx, <const double*>op.dy)


cdef class PoolOp:
    """Native 'max' or 'avg' pooling of (H, W, C) samples; the geometry
    (output (OH, OW), window, strides, top/left padding) is validated by the
    caller and every window overlaps the image."""
    cdef Op op
    cdef PoolCfg cfg

    def __cinit__(self, str kind, dtype, input_shape, output_hw, pool_size, strides,
                  padding_top_left):
        cdef PoolCfg* c = &self.cfg
        c.kind = KINDS[kind]
        c.H, c.W, c.C = input_shape
        c.OH, c.OW = output_hw
        c.ph, c.pw = pool_size
        c.sh, c.sw = strides
        c.pt, c.pl = padding_top_left
        self.op.dtype = dtype_code(dtype)
        self.op.in_size = c.H * c.W * c.C
        self.op.out_size = c.OH * c.OW * c.C
        self.op.work_size = c.C if c.kind == MAX else 0
        self.op.cfg = c
        self.op.forward = pool_op_forward
        self.op.backward = pool_op_backward

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
