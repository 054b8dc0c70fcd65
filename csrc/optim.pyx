# Optimizer update kernels, applied in place to one parameter array at a time.
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Updater, F32, dtype_code


# param (size) -= learning_rate * grad (size)
cdef void sgd_update(real* param, const real* grad, Py_ssize_t size,
                     real learning_rate) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        param[i] -= learning_rate * grad[i]


cdef void sgd_updater(Updater* u, Py_ssize_t slot, void* param, const void* grad,
                      Py_ssize_t size) noexcept nogil:
    if u.dtype == F32:
        sgd_update(<float*>param, <const float*>grad, size, <float>u.learning_rate)
    else:
        sgd_update(<double*>param, <const double*>grad, size, u.learning_rate)


cdef class SGDUpdater:
    """Plain SGD.  Plans fuse it into the backward pass of ops with parameters."""
    cdef Updater updater
    cdef readonly bint fusable

    def __cinit__(self, dtype):
        self.updater.dtype = dtype_code(dtype)
        self.updater.update = sgd_updater
        self.fusable = True

    def capsule(self):
        return PyCapsule_New(&self.updater, "nncore.Updater", NULL)

