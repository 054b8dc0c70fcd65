# GlobalAveragePooling1D after Embedding(mask_zero=True): the mean of each
# channel over the unmasked steps of a (T, C) sample (masking.pxd says where
# the mask comes from); a sample with no unmasked step gives zeros.  Without
# a mask (the layer run alone) every step counts.
from libc.string cimport memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, dtype_code
from masking cimport mask_indices, op_cfg


cdef struct MaskedMeanCfg:
    Py_ssize_t T, C              # steps, channels
    const void* mask_cfg         # cfg of the masking Embedding op, or NULL


# y (n, C) = the mean of x (n, T, C) over the steps t whose index ids (n, T;
# row stride ld) is not 0 (every step when ids is NULL)
cdef void masked_mean_forward(real* y, const real* x, const real* ids, Py_ssize_t ld,
                              Py_ssize_t n, Py_ssize_t T, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t s, t, j, count
    cdef real* out
    cdef const real* row
    cdef real scale
    for s in range(n):
        out = y + s * C
        memset(out, 0, C * sizeof(real))
        count = 0
        for t in range(T):
            if ids != NULL and ids[s * ld + t] == 0:
                continue
            count += 1
            row = x + (s * T + t) * C
            for j in range(C):
                out[j] += row[j]
        if count:
            scale = <real>1 / count
            for j in range(C):
                out[j] *= scale


# dx (n, T, C) = dy (n, C) / (unmasked steps of the sample) at its unmasked
# steps, zero at the masked ones
cdef void masked_mean_backward(real* dx, const real* dy, const real* ids, Py_ssize_t ld,
                               Py_ssize_t n, Py_ssize_t T, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t s, t, j, count
    cdef real* row
    cdef real scale
    for s in range(n):
        count = T
        if ids != NULL:
            count = 0
            for t in range(T):
                count += ids[s * ld + t] != 0
        scale = <real>1 / count if count else 0
        for t in range(T):
            row = dx + (s * T + t) * C
            if ids != NULL and ids[s * ld + t] == 0:
                memset(row, 0, C * sizeof(real))
                continue
            for j in range(C):
                row[j] = dy[s * C + j] * scale


cdef void _forward(Op* op, Py_ssize_t n, real* y) noexcept nogil:
    cdef const MaskedMeanCfg* c = <const MaskedMeanCfg*>op.cfg
    cdef Py_ssize_t ld = 0
    cdef const real* ids = <const real*>mask_indices(op, c.mask_cfg, &ld)
    masked_mean_forward(y, <const real*>op.x, ids, ld, n, c.T, c.C)


cdef void _backward(Op* op, Py_ssize_t n, real* dx) noexcept nogil:
    cdef const MaskedMeanCfg* c = <const MaskedMeanCfg*>op.cfg
    cdef Py_ssize_t ld = 0
    cdef const real* ids = <const real*>mask_indices(op, c.mask_cfg, &ld)
    if dx != NULL:
        masked_mean_backward(dx, <const real*>op.dy, ids, ld, n, c.T, c.C)


cdef void masked_mean_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _forward(op, n, <float*>op.y)
    else:
        _forward(op, n, <double*>op.y)


cdef void masked_mean_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dtype == F32:
        _backward(op, n, <float*>op.dx)
    else:
        _backward(op, n, <double*>op.dx)


cdef class MaskedMeanOp:
    """The mean over the unmasked steps of (steps, channels) samples, masked
    by the Embedding op given to `set_mask`."""
    cdef Op op
    cdef MaskedMeanCfg cfg
    cdef object source

    def __cinit__(self, dtype, Py_ssize_t steps, Py_ssize_t channels):
        self.cfg.T, self.cfg.C = steps, channels
        self.cfg.mask_cfg = NULL
        self.op.dtype = dtype_code(dtype)
        self.op.in_size = steps * channels
        self.op.out_size = channels
        self.op.cfg = &self.cfg
        self.op.forward = masked_mean_op_forward
        self.op.backward = masked_mean_op_backward

    def set_mask(self, source):
        """Be masked by the Embedding op `source` when it starts the plan's
        chain (None: never masked).  Call it only while no plan runs the op."""
        self.source = source
        self.cfg.mask_cfg = op_cfg(source)

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
