# Weight penalties (L1, L2, L1L2) on a parameter array: their value for the
# training loss and their gradient, added to the array's gradient buffer
# after backward and before the optimizer step.
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Penalty, F32, address, dtype_code, r_abs


# returns l1 * sum|w| + l2 * sum w^2 over w (size); when grad is not NULL also
# grad (size) += l1 * sign(w) + 2 * l2 * w
cdef double penalty_add(real* grad, const real* w, Py_ssize_t size, double l1,
                        double l2) noexcept nogil:
    cdef Py_ssize_t i
    cdef double total_abs = 0, total_sq = 0
    cdef real a = <real>l1, b = <real>(2 * l2), v
    for i in range(size):
        v = w[i]
        total_abs += r_abs(v)
        total_sq += <double>v * v
    if grad != NULL:
        for i in range(size):
            v = w[i]
            grad[i] += a * ((v > 0) - (v < 0)) + b * v
    return l1 * total_abs + l2 * total_sq


cdef double penalty_apply(const Penalty* p, void* grad) noexcept nogil:
    if p.dtype == F32:
        return penalty_add(<float*>grad, <const float*>p.param, p.size, p.l1, p.l2)
    return penalty_add(<double*>grad, <const double*>p.param, p.size, p.l1, p.l2)


cdef class PenaltyOp:
    """The penalty l1 * sum|param| + l2 * sum param^2 on a C-contiguous
    parameter array, whose gradient goes to `grad` (same shape and dtype)."""
    cdef Penalty record
    cdef object param, grad

    def __cinit__(self, param, grad, double l1, double l2):
        self.param, self.grad = param, grad
        self.record.dtype = dtype_code(param)
        self.record.l1 = l1
        self.record.l2 = l2
        self.record.param = address(param)
        self.record.grad = address(grad)
        self.record.size = param.size
        self.record.apply = penalty_apply

    def value(self):
        """The penalty of the array's current values."""
        cdef double v
        with nogil:
            v = self.record.apply(&self.record, NULL)
        return v

    def apply(self):
        """Add the penalty's gradient to `grad`; returns the penalty."""
        cdef double v
        with nogil:
            v = self.record.apply(&self.record, self.record.grad)
        return v

    def capsule(self):
        return PyCapsule_New(&self.record, "nncore.Penalty", NULL)
