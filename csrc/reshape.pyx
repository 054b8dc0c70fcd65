# Reshape (Flatten): the values pass through unchanged; only the shape the
# Python layer reports changes.  A copy, because every op of a plan writes
# its own output buffer.
from libc.string cimport memcpy
from cpython.pycapsule cimport PyCapsule_New
from core cimport Op, F32, dtype_code


cdef void reshape_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    memcpy(op.y, op.x, n * op.in_size * (sizeof(float) if op.dtype == F32 else sizeof(double)))


cdef void reshape_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dx != NULL:
        memcpy(op.dx, op.dy, n * op.in_size * (sizeof(float) if op.dtype == F32 else sizeof(double)))


cdef class ReshapeOp:
    """Native pass-through of samples of `size` elements."""
    cdef Op op

    def __cinit__(self, dtype, Py_ssize_t size):
        self.op.dtype = dtype_code(dtype)
        self.op.in_size = size
        self.op.out_size = size
        self.op.forward = reshape_op_forward
        self.op.backward = reshape_op_backward

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
