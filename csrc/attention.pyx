# Scaled dot-product self-attention, the core of MultiHeadAttention (the
# projections around it are dense ops).  A sample's input holds the
# projected queries, keys and values of its T positions side by side,
# (T, 3*H*K): columns [0, HK) the queries, [HK, 2HK) the keys, [2HK, 3HK) the
# values, head h at columns h*K..h*K+K of each block.  Per head:
#   P = softmax(Q K^T / sqrt(K))    (T, T), rows over the keys; causal: key
#                                   positions after the query's get weight 0
#   O = P V                         (T, K), head h's columns of the (T, H*K) output
# The products are BLAS GEMMs on strided views (no copies); the softmax
# sums in double, its float32 exp is fastmath.pxd's (its loop vectorizes).
# The cache keeps P for backward.
from libc.math cimport sqrt
from libc.string cimport memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, dtype_code, r_exp, r_max
from blas cimport gemm
from fastmath cimport fast_exp


cdef struct AttentionCfg:
    Py_ssize_t T, H, K        # positions, heads, key size per head
    bint causal


# each row i of P (T, T) becomes softmax over its first (i + 1 if causal
# else T) values, zeros after them
cdef void softmax_rows(real* P, Py_ssize_t T, bint causal) noexcept nogil:
    cdef Py_ssize_t i, j, width
    cdef real top
    cdef double total
    cdef real* row
    for i in range(T):
        row = P + i * T
        width = i + 1 if causal else T
        top = row[0]
        for j in range(1, width):
            top = r_max(top, row[j])
        for j in range(width):
            if real is float:
                row[j] = fast_exp(row[j] - top)
            else:
                row[j] = r_exp(row[j] - top)
        total = 0
        for j in range(width):
            total += row[j]
        for j in range(width):
            row[j] = <real>(row[j] / total)
        memset(row + width, 0, (T - width) * sizeof(real))


# y (n, T, H*K) = attention of qkv (n, T, 3*H*K); P (n, H, T, T) kept
cdef void attention_forward(real* y, real* P, const real* qkv, Py_ssize_t n,
                            const AttentionCfg* c) noexcept nogil:
    cdef Py_ssize_t s, h, T = c.T, HK = c.H * c.K
    cdef int ld = <int>(3 * HK)
    cdef real scale = <real>(1 / sqrt(<double>c.K))
    cdef const real* q
    cdef real* p
    for s in range(n):
        for h in range(c.H):
            q = qkv + s * T * 3 * HK + h * c.K
            p = P + (s * c.H + h) * T * T
            gemm(False, True, <int>T, <int>T, <int>c.K, scale, q, ld, q + HK, ld, 0, p, <int>T)
            softmax_rows(p, T, c.causal)
            gemm(False, False, <int>T, <int>c.K, <int>T, 1, p, <int>T, q + 2 * HK, ld, 0,
                 y + s * T * HK + h * c.K, <int>HK)


# dqkv (n, T, 3*H*K) from dy (n, T, H*K), qkv and the kept P; dS: (T, T) scratch
#   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(P * dP)),
#   dQ = dS K / sqrt(K),  dK = dS^T Q / sqrt(K)
cdef void attention_backward(real* dqkv, real* dS, const real* dy, const real* qkv,
                             const real* P, Py_ssize_t n, const AttentionCfg* c) noexcept nogil:
    cdef Py_ssize_t s, h, i, j, width, T = c.T, HK = c.H * c.K
    cdef int ld = <int>(3 * HK)
    cdef real scale = <real>(1 / sqrt(<double>c.K))
    cdef const real* q
    cdef const real* p
    cdef const real* dout
    cdef real* dq
    cdef double dot
    for s in range(n):
        for h in range(c.H):
            q = qkv + s * T * 3 * HK + h * c.K
            dq = dqkv + s * T * 3 * HK + h * c.K
            p = P + (s * c.H + h) * T * T
            dout = dy + s * T * HK + h * c.K
            gemm(True, False, <int>T, <int>c.K, <int>T, 1, p, <int>T, dout, <int>HK, 0,
                 dq + 2 * HK, ld)
            gemm(False, True, <int>T, <int>T, <int>c.K, 1, dout, <int>HK, q + 2 * HK, ld, 0,
                 dS, <int>T)
            for i in range(T):          # P is 0 after column `width` of row i
                width = i + 1 if c.causal else T
                dot = 0
                for j in range(width):
                    dot += p[i * T + j] * dS[i * T + j]
                for j in range(width):
                    dS[i * T + j] = <real>(p[i * T + j] * (dS[i * T + j] - dot))
                memset(dS + i * T + width, 0, (T - width) * sizeof(real))
            gemm(False, False, <int>T, <int>c.K, <int>T, scale, dS, <int>T, q + HK, ld, 0,
                 dq, ld)
            gemm(True, False, <int>T, <int>c.K, <int>T, scale, dS, <int>T, q, ld, 0,
                 dq + HK, ld)


cdef void attention_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    cdef const AttentionCfg* c = <const AttentionCfg*>op.cfg
    if op.dtype == F32:
        attention_forward(<float*>op.y, <float*>op.cache, <const float*>op.x, n, c)
    else:
        attention_forward(<double*>op.y, <double*>op.cache, <const double*>op.x, n, c)


cdef void attention_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    cdef const AttentionCfg* c = <const AttentionCfg*>op.cfg
    if op.dx == NULL:         # no parameters: nothing else to compute
        return
    if op.dtype == F32:
        attention_backward(<float*>op.dx, <float*>op.work, <const float*>op.dy,
                           <const float*>op.x, <const float*>op.cache, n, c)
    else:
        attention_backward(<double*>op.dx, <double*>op.work, <const double*>op.dy,
                           <const double*>op.x, <const double*>op.cache, n, c)


cdef class AttentionOp:
    """Native self-attention core over samples of `steps` positions with
    `heads` heads of `key_dim` values: (T, 3*H*K) projected queries, keys and
    values in, (T, H*K) out."""
    cdef Op op
    cdef AttentionCfg cfg

    def __cinit__(self, dtype, Py_ssize_t steps, Py_ssize_t heads, Py_ssize_t key_dim,
                  bint causal):
        self.cfg.T, self.cfg.H, self.cfg.K = steps, heads, key_dim
        self.cfg.causal = causal
        self.op.dtype = dtype_code(dtype)
        self.op.in_size = steps * 3 * heads * key_dim
        self.op.out_size = steps * heads * key_dim
        self.op.cache_size = heads * steps * steps
        self.op.work_size = steps * steps
        self.op.work_group = 1
        self.op.cfg = &self.cfg
        self.op.forward = attention_op_forward
        self.op.backward = attention_op_backward

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
