# Reductions over a row of n values, accumulated in eight interleaved
# partial results (value j goes to partial j % 8) that are combined pairwise
# at the end.  The eight chains are independent, so the loops vectorize and
# do not wait on one add's latency per value, without the compiler
# reordering anything: every build rounds them alike.
from core cimport real, r_max


# sum of x (n), in double
cdef inline double sum_d(const real* x, Py_ssize_t n) noexcept nogil:
    cdef double acc[8]
    cdef Py_ssize_t j, l, full = n - n % 8
    for l in range(8):
        acc[l] = 0
    for j in range(0, full, 8):
        for l in range(8):
            acc[l] += x[j + l]
    for j in range(full, n):
        acc[j - full] += x[j]
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


# sum of x (n) * y (n), in double
cdef inline double dot_d(const real* x, const real* y, Py_ssize_t n) noexcept nogil:
    cdef double acc[8]
    cdef Py_ssize_t j, l, full = n - n % 8
    for l in range(8):
        acc[l] = 0
    for j in range(0, full, 8):
        for l in range(8):
            acc[l] += <double>x[j + l] * y[j + l]
    for j in range(full, n):
        acc[j - full] += <double>x[j] * y[j]
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


# sum of (x (n) - shift)^2, in double
cdef inline double sum_sq_d(const real* x, double shift, Py_ssize_t n) noexcept nogil:
    cdef double acc[8]
    cdef double diff
    cdef Py_ssize_t j, l, full = n - n % 8
    for l in range(8):
        acc[l] = 0
    for j in range(0, full, 8):
        for l in range(8):
            diff = x[j + l] - shift
            acc[l] += diff * diff
    for j in range(full, n):
        diff = x[j] - shift
        acc[j - full] += diff * diff
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


# largest of x (n), n >= 1
cdef inline real max_r(const real* x, Py_ssize_t n) noexcept nogil:
    cdef real acc[8]
    cdef Py_ssize_t j, l, full = n - n % 8
    if full == 0:
        acc[0] = x[0]
        for j in range(1, n):
            acc[0] = r_max(acc[0], x[j])
        return acc[0]
    for l in range(8):
        acc[l] = x[l]
    for j in range(8, full, 8):
        for l in range(8):
            acc[l] = r_max(acc[l], x[j + l])
    for j in range(full, n):
        acc[j - full] = r_max(acc[j - full], x[j])
    for l in range(1, 8):
        acc[0] = r_max(acc[0], acc[l])
    return acc[0]
