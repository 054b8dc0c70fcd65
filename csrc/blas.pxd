# Row-major BLAS over scipy.linalg.cython_blas (which is column-major).
# A row-major (m, n) matrix is the column-major (n, m) transpose, so
# C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T.
from scipy.linalg.cython_blas cimport (sgemm, dgemm, sgemv, dgemv, sger, dger, saxpy,
                                       daxpy)
from core cimport real


# C (m, n) = alpha * op(A) (m, k) @ op(B) (k, n) + beta * C
cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      real alpha, const real* a, int lda,
                      const real* b, int ldb,
                      real beta, real* c, int ldc) noexcept nogil:
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if real is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda,
              &beta, c, &ldc)


# y (m or n) = alpha * op(A) x + beta * y, A row-major (m, n)
cdef inline void gemv(bint trans_a, int m, int n, real alpha, const real* a,
                      int lda, const real* x, real beta, real* y) noexcept nogil:
    # row-major A is column-major A^T: flip the transpose flag
    cdef char t = b'N' if trans_a else b'T'
    cdef int one = 1
    if real is float:
        sgemv(&t, &n, &m, &alpha, <float*>a, &lda, <float*>x, &one, &beta, y, &one)
    else:
        dgemv(&t, &n, &m, &alpha, <double*>a, &lda, <double*>x, &one, &beta, y, &one)


# A (m, n) += alpha * x (m) y (n)^T, A row-major
cdef inline void ger(int m, int n, real alpha, const real* x, const real* y,
                     real* a, int lda) noexcept nogil:
    cdef int one = 1
    if real is float:
        sger(&n, &m, &alpha, <float*>y, &one, <float*>x, &one, a, &lda)
    else:
        dger(&n, &m, &alpha, <double*>y, &one, <double*>x, &one, a, &lda)


# y (n) += alpha * x (n)
cdef inline void axpy(int n, real alpha, const real* x, real* y) noexcept nogil:
    cdef int one = 1
    if real is float:
        saxpy(&n, &alpha, <float*>x, &one, y, &one)
    else:
        daxpy(&n, &alpha, <double*>x, &one, y, &one)
