# Scaled dot-product self-attention, the core of MultiHeadAttention (the
# projections around it are dense ops).  A sample's input holds the
# projected queries, keys and values of its T positions side by side,
# (T, 3*H*K): columns [0, HK) the queries, [HK, 2HK) the keys, [2HK, 3HK) the
# values, head h at columns h*K..h*K+K of each block.  Per head:
#   P = softmax(Q K^T / sqrt(K))    (T, T), rows over the keys; causal: key
#                                   positions after the query's get weight 0
#   O = P V                         (T, K), head h's columns of the (T, H*K) output
# The products are BLAS GEMMs on strided views (no copies).  Causal
# attention runs them in blocks of BLOCK query rows: the rows of block
# [r0, r1) see keys [0, r1) only, so the products skip the part above the
# diagonal blocks (with T = 128 and blocks of 64, 3/4 of the full
# products); P is written (and read) below the diagonal blocks only, and is
# zero above the diagonal inside them.  The softmax sums in double, its
# float32 exp is fastmath.pxd's (its loop vectorizes).  A training forward
# keeps P in the cache for backward; inference reuses one (T, T) of scratch.
from libc.math cimport sqrt
from libc.string cimport memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, dtype_code, r_exp
from blas cimport gemm
from fastmath cimport fast_exp
from reduce cimport sum_d, dot_d, max_r


cdef struct AttentionCfg:
    Py_ssize_t T, H, K        # positions, heads, key size per head
    bint causal


# query rows per block of causal attention: smaller blocks skip more of the
# products above the diagonal, but make more and smaller GEMMs, which BLAS
# runs less efficiently (over 128 positions, blocks of 32 were no faster)
cdef Py_ssize_t BLOCK = 64


def set_block_rows(Py_ssize_t rows):
    """Set the query rows per block of causal attention (tests use small
    blocks to exercise several); returns the previous value."""
    global BLOCK
    if rows < 1:
        raise ValueError("blocks hold at least one row")
    previous, BLOCK = BLOCK, rows
    return previous


# the block size for T positions: BLOCK when causal, else all T rows at once
cdef inline Py_ssize_t block_rows(const AttentionCfg* c) noexcept nogil:
    return BLOCK if c.causal and c.T > BLOCK else c.T


# rows [r0, r1) of P (T, T): each row i becomes the softmax of its first
# (i + 1 if causal else T) values, zeros after them up to column `end`
cdef void softmax_rows(real* P, Py_ssize_t T, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t end,
                       bint causal) noexcept nogil:
    cdef Py_ssize_t i, j, width
    cdef real top, inv
    cdef real* row
    for i in range(r0, r1):
        row = P + i * T
        width = i + 1 if causal else T
        top = max_r(row, width)
        for j in range(width):
            if real is float:
                row[j] = fast_exp(row[j] - top)
            else:
                row[j] = r_exp(row[j] - top)
        inv = <real>(1 / sum_d(row, width))
        for j in range(width):
            row[j] = row[j] * inv
        memset(row + width, 0, (end - width) * sizeof(real))


# y (n, T, H*K) = attention of qkv (n, T, 3*H*K); P (n, H, T, T) kept, or
# when not `keep` one (T, T) reused by every sample and head (it stays in cache)
cdef void attention_forward(real* y, real* P, const real* qkv, Py_ssize_t n,
                            const AttentionCfg* c, bint keep) noexcept nogil:
    cdef Py_ssize_t s, h, b, r0, r1, T = c.T, HK = c.H * c.K, B = block_rows(c)
    cdef int ld = <int>(3 * HK)
    cdef real scale = <real>(1 / sqrt(<double>c.K))
    cdef const real* q
    cdef real* p
    for s in range(n):
        for h in range(c.H):
            q = qkv + s * T * 3 * HK + h * c.K
            p = P + (s * c.H + h) * T * T if keep else P
            for b in range((T + B - 1) // B):
                r0 = b * B
                r1 = min(r0 + B, T)
                # S[r0:r1, :r1] = scale Q[r0:r1] K[:r1]^T, softmax, O[r0:r1] = P V[:r1]
                gemm(False, True, <int>(r1 - r0), <int>r1, <int>c.K, scale, q + r0 * ld, ld,
                     q + HK, ld, 0, p + r0 * T, <int>T)
                softmax_rows(p, T, r0, r1, r1, c.causal)
                gemm(False, False, <int>(r1 - r0), <int>c.K, <int>r1, 1, p + r0 * T, <int>T,
                     q + 2 * HK, ld, 0, y + (s * T + r0) * HK + h * c.K, <int>HK)


# dqkv (n, T, 3*H*K) from dy (n, T, H*K), qkv and the kept P; dS: (T, T) scratch
#   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(P * dP)),
#   dQ = dS K / sqrt(K),  dK = dS^T Q / sqrt(K)
# causal, in blocks [c0, c1): dV[c0:c1] and dK[c0:c1] take rows [c0, T) of
# P and dS, dP, dS and dQ of rows [r0, r1) take columns [0, r1)
cdef void attention_backward(real* dqkv, real* dS, const real* dy, const real* qkv,
                             const real* P, Py_ssize_t n, const AttentionCfg* c) noexcept nogil:
    cdef Py_ssize_t s, h, i, j, b, r0, r1, width, T = c.T, HK = c.H * c.K, B = block_rows(c)
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
            for b in range((T + B - 1) // B):
                r0 = b * B
                r1 = min(r0 + B, T)
                # dV[r0:r1] = P[r0:, r0:r1]^T dO[r0:]
                gemm(True, False, <int>(r1 - r0), <int>c.K, <int>(T - r0), 1, p + r0 * T + r0,
                     <int>T, dout + r0 * HK, <int>HK, 0, dq + 2 * HK + r0 * ld, ld)
                # dP[r0:r1, :r1] = dO[r0:r1] V[:r1]^T, then dS in place
                gemm(False, True, <int>(r1 - r0), <int>r1, <int>c.K, 1, dout + r0 * HK, <int>HK,
                     q + 2 * HK, ld, 0, dS + r0 * T, <int>T)
                for i in range(r0, r1):          # P is 0 after column `width` of row i
                    width = i + 1 if c.causal else T
                    dot = dot_d(p + i * T, dS + i * T, width)
                    for j in range(width):
                        dS[i * T + j] = <real>(p[i * T + j] * (dS[i * T + j] - dot))
                    memset(dS + i * T + width, 0, (r1 - width) * sizeof(real))
                # dQ[r0:r1] = scale dS[r0:r1, :r1] K[:r1]
                gemm(False, False, <int>(r1 - r0), <int>c.K, <int>r1, scale, dS + r0 * T, <int>T,
                     q + HK, ld, 0, dq + r0 * ld, ld)
            for b in range((T + B - 1) // B):
                r0 = b * B
                r1 = min(r0 + B, T)
                # dK[r0:r1] = scale dS[r0:, r0:r1]^T Q[r0:]
                gemm(True, False, <int>(r1 - r0), <int>c.K, <int>(T - r0), scale,
                     dS + r0 * T + r0, <int>T, q + r0 * ld, ld, 0, dq + HK + r0 * ld, ld)


# state[0]: 1 when the last forward kept P (a training forward), else 0
cdef void attention_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    cdef const AttentionCfg* c = <const AttentionCfg*>op.cfg
    # inference keeps no P: the work buffer holds one at a time
    cdef void* P = op.cache if training else op.work
    op.state[0] = training
    if op.dtype == F32:
        attention_forward(<float*>op.y, <float*>P, <const float*>op.x, n, c, training)
    else:
        attention_forward(<double*>op.y, <double*>P, <const double*>op.x, n, c, training)


cdef void attention_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    cdef const AttentionCfg* c = <const AttentionCfg*>op.cfg
    if op.dx == NULL:         # no parameters: nothing else to compute
        return
    if op.state[0] == 0:
        # after an inference forward: run it again keeping P (y comes out the same)
        attention_op_forward(op, n, True)
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
        self.op.state_size = 1
        self.op.cfg = &self.cfg
        self.op.forward = attention_op_forward
        self.op.backward = attention_op_backward

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
