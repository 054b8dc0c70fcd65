# Recurrent layers (SimpleRNN, LSTM, GRU) over (T, D) samples, with
# backpropagation through time.  The input projection of every step is one
# GEMM over all n*T rows; each step then adds the recurrent projection of the
# previous state with one GEMM over the n samples.  Gate blocks follow
# Keras: LSTM (i, f, c, o), GRU (z, r, h) with the reset gate applied after
# the recurrent projection (Keras' reset_after=True, PyTorch's GRU).
#
# Layout of the op's cache, as blocks over the n samples of a call:
#   Z  (n, T, G*U)  gate activations, by input position
#   H  (n, T, U)    states h, by step
#   E  (n, T, U)    LSTM: cell states c; GRU: the candidate's recurrent
#                   projection (h_prev @ U_h + b_rh), by step
# With go_backwards, step t reads input position T-1-t.
from libc.string cimport memcpy, memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, address, dtype_code, declare_params, r_exp, r_tanh
from epilogue cimport column_sums
from blas cimport gemm
from fastmath cimport fast_sigmoid, fast_tanh

cdef enum Cell:
    SIMPLE = 0
    LSTM = 1
    GRU = 2

CELLS = {"simple": (SIMPLE, 1), "lstm": (LSTM, 4), "gru": (GRU, 3)}


cdef struct RnnCfg:
    int cell
    Py_ssize_t T, D, U, G          # steps, input features, units, gate blocks
    bint sequences                 # output every step's state, else the last one
    bint backwards                 # step t reads input position T-1-t
    void* kernel                   # (D, G*U)
    void* recurrent                # (U, G*U)
    void* bias                     # (G*U), GRU: (2, G*U) input and recurrent biases


# float32: the vectorizable functions of fastmath.pxd; float64: libm
cdef inline real sigmoid(real v) noexcept nogil:
    if real is float:
        return fast_sigmoid(v)
    else:
        return 1 / (1 + r_exp(-v))


cdef inline real tanh_(real v) noexcept nogil:
    if real is float:
        return fast_tanh(v)
    else:
        return r_tanh(v)


cdef inline Py_ssize_t position(const RnnCfg* c, Py_ssize_t t) noexcept nogil:
    return c.T - 1 - t if c.backwards else t


# one step of the cell for n samples: gates zt (n, GU; row stride lz) hold the
# input projection (+ bias) and become the gate activations; hp, ep: the
# previous step's H and E rows (NULL at step 0; row stride lh); writes ht and
# et (row stride lh).  rec (n, GU): scratch for the recurrent projection.
# Each loop does one simple thing over a row, so that it vectorizes.
cdef void cell_forward(real* zt, real* ht, real* et, const real* hp, const real* ep,
                       real* rec, Py_ssize_t n, Py_ssize_t lz, Py_ssize_t lh,
                       const RnnCfg* c) noexcept nogil:
    cdef Py_ssize_t s, j, U = c.U, GU = c.G * c.U
    cdef const real* W = <const real*>c.recurrent
    cdef const real* b_rec = <const real*>c.bias + GU
    cdef real* a          # first gate block of a row (i or z)
    cdef real* b          # second (f or r)
    cdef real* g          # candidate
    cdef real* o          # LSTM output gate
    cdef real* h
    cdef real* e
    cdef real* w
    if c.cell != GRU:
        if hp != NULL:
            gemm(False, False, n, GU, U, 1, hp, lh, W, GU, 1, zt, lz)
    elif hp != NULL:
        gemm(False, False, n, GU, U, 1, hp, lh, W, GU, 0, rec, GU)
    else:
        memset(rec, 0, n * GU * sizeof(real))
    for s in range(n):
        a, h, e, w = zt + s * lz, ht + s * lh, et + s * lh, rec + s * GU
        b, g, o = a + U, a + 2 * U, a + 3 * U
        if c.cell == SIMPLE:
            for j in range(U):
                h[j] = tanh_(a[j])
        elif c.cell == LSTM:
            # c = f * c_prev + i * g, h = o * tanh(c)
            for j in range(U):
                a[j] = sigmoid(a[j])
                b[j] = sigmoid(b[j])
                g[j] = tanh_(g[j])
                o[j] = sigmoid(o[j])
                e[j] = a[j] * g[j]
            if ep != NULL:
                for j in range(U):
                    e[j] = b[j] * ep[s * lh + j] + e[j]
            for j in range(U):
                h[j] = o[j] * tanh_(e[j])
        else:
            # h = z * h_prev + (1 - z) * g, g = tanh(x W_h + b_xh + r * e),
            # e = h_prev U_h + b_hh
            for j in range(U):
                a[j] = sigmoid(a[j] + w[j] + b_rec[j])
                b[j] = sigmoid(b[j] + w[U + j] + b_rec[U + j])
                e[j] = w[2 * U + j] + b_rec[2 * U + j]
                g[j] = tanh_(g[j] + b[j] * e[j])
                h[j] = (1 - a[j]) * g[j]
            if hp != NULL:
                for j in range(U):
                    h[j] = a[j] * hp[s * lh + j] + h[j]


# y (n, T, U) or (n, U) = the states of the layer over x (n, T, D);
# cache: Z, H, E (above); work: (n, GU) scratch
cdef void rnn_forward(real* y, real* cache, real* work, const real* x, Py_ssize_t n,
                      const RnnCfg* c) noexcept nogil:
    cdef Py_ssize_t s, r, j, t, T = c.T, U = c.U, GU = c.G * c.U
    cdef real* Z = cache
    cdef real* H = Z + n * T * GU
    cdef real* E = H + n * T * U
    cdef const real* bias = <const real*>c.bias
    gemm(False, False, n * T, GU, c.D, 1, x, c.D, <const real*>c.kernel, GU, 0, Z, GU)
    for r in range(n * T):
        for j in range(GU):
            Z[r * GU + j] += bias[j]
    for t in range(T):
        cell_forward(Z + position(c, t) * GU, H + t * U, E + t * U,
                     H + (t - 1) * U if t else NULL, E + (t - 1) * U if t else NULL,
                     work, n, T * GU, T * U, c)
    if c.sequences:
        memcpy(y, H, n * T * U * sizeof(real))
    else:
        for s in range(n):
            memcpy(y + s * U, H + (s * T + T - 1) * U, U * sizeof(real))


# the gradients of step t's gate pre-activations: dz (n, GU; row stride lz)
# w.r.t. the input projection, dr (n, GU) w.r.t. the recurrent projection
# (the same as dz except for the GRU), from dh (n, U), the gradient w.r.t.
# the step's state; dc (n, U): the LSTM's cell-state gradient, carried to
# the step before.  GRU: dh becomes the part of the previous state's
# gradient that skips the recurrent projection.
cdef void cell_backward(real* dz, real* dr, real* dh, real* dc, const real* zt,
                        const real* ht, const real* et, const real* hp, const real* ep,
                        Py_ssize_t n, Py_ssize_t lz, Py_ssize_t lh,
                        const RnnCfg* c) noexcept nogil:
    cdef Py_ssize_t s, j, U = c.U, GU = c.G * c.U
    cdef const real* a          # gate blocks of a row, as in cell_forward
    cdef const real* b
    cdef const real* g
    cdef const real* o
    cdef const real* h
    cdef const real* e
    cdef real* d
    cdef real* q
    cdef real* dhs
    cdef real* dcs
    cdef real tc, dcell, dgate
    for s in range(n):
        a, h, e = zt + s * lz, ht + s * lh, et + s * lh
        b, g, o = a + U, a + 2 * U, a + 3 * U
        d, q, dhs, dcs = dz + s * lz, dr + s * GU, dh + s * U, dc + s * U
        if c.cell == SIMPLE:
            for j in range(U):
                d[j] = dhs[j] * (1 - h[j] * h[j])
        elif c.cell == LSTM:
            # d[U + j] first holds dcell, then (with c_prev) the f gradient
            for j in range(U):
                tc = tanh_(e[j])
                dcell = dcs[j] + dhs[j] * o[j] * (1 - tc * tc)
                d[j] = dcell * g[j] * a[j] * (1 - a[j])
                d[U + j] = dcell
                d[2 * U + j] = dcell * a[j] * (1 - g[j] * g[j])
                d[3 * U + j] = dhs[j] * tc * o[j] * (1 - o[j])
                dcs[j] = dcell * b[j]
            if ep != NULL:
                for j in range(U):
                    d[U + j] = d[U + j] * ep[s * lh + j] * b[j] * (1 - b[j])
            else:
                for j in range(U):
                    d[U + j] = 0
        else:
            # the z gradient needs h_prev (zero at step 0)
            if hp != NULL:
                for j in range(U):
                    d[j] = dhs[j] * (hp[s * lh + j] - g[j]) * a[j] * (1 - a[j])
            else:
                for j in range(U):
                    d[j] = dhs[j] * (0 - g[j]) * a[j] * (1 - a[j])
            for j in range(U):
                dgate = dhs[j] * (1 - a[j]) * (1 - g[j] * g[j])
                d[U + j] = dgate * e[j] * b[j] * (1 - b[j])
                d[2 * U + j] = dgate
                q[j] = d[j]
                q[U + j] = d[U + j]
                q[2 * U + j] = dgate * b[j]
                dhs[j] = dhs[j] * a[j]


# g_kernel (D, GU), g_recurrent (U, GU), g_bias: the gradients of the weights
# for dy (n, T, U) or (n, U); dx (n, T, D), skipped when NULL.  cache: what
# forward kept; work: dZ (n, T, GU), dh (n, U), dc (n, U), dR (n, GU);
# totals: (2 GU) doubles
cdef void rnn_backward(real* dx, real* g_kernel, real* g_recurrent, real* g_bias,
                       const real* dy, const real* x, const real* cache, real* work,
                       double* totals, Py_ssize_t n, const RnnCfg* c) noexcept nogil:
    cdef Py_ssize_t s, j, t, T = c.T, U = c.U, GU = c.G * c.U
    cdef const real* Z = cache
    cdef const real* H = Z + n * T * GU
    cdef const real* E = H + n * T * U
    cdef real* dZ = work
    cdef real* dh = dZ + n * T * GU
    cdef real* dc = dh + n * U
    cdef real* dR = dc + n * U
    cdef real* dRec
    cdef Py_ssize_t ld_rec
    cdef const real* recurrent = <const real*>c.recurrent
    memset(dh, 0, 2 * n * U * sizeof(real))
    memset(g_recurrent, 0, U * GU * sizeof(real))
    for j in range(GU):
        totals[GU + j] = 0
    for t in range(T - 1, -1, -1):
        if c.sequences:
            for s in range(n):
                for j in range(U):
                    dh[s * U + j] += dy[(s * T + t) * U + j]
        elif t == T - 1:
            for s in range(n * U):
                dh[s] += dy[s]
        cell_backward(dZ + position(c, t) * GU, dR, dh, dc, Z + position(c, t) * GU,
                      H + t * U, E + t * U, H + (t - 1) * U if t else NULL,
                      E + (t - 1) * U if t else NULL, n, T * GU, T * U, c)
        if c.cell == GRU:
            dRec, ld_rec = dR, GU
            for s in range(n):
                for j in range(GU):
                    totals[GU + j] += dR[s * GU + j]
        else:
            dRec, ld_rec = dZ + position(c, t) * GU, T * GU
        if t == 0:
            break
        gemm(True, False, U, GU, n, 1, H + (t - 1) * U, T * U, dRec, ld_rec, 1,
             g_recurrent, GU)
        gemm(False, True, n, U, GU, 1, dRec, ld_rec, recurrent, GU,
             1 if c.cell == GRU else 0, dh, U)
    gemm(True, False, c.D, GU, n * T, 1, x, c.D, dZ, GU, 0, g_kernel, GU)
    column_sums(totals, dZ, n * T, GU, 1)
    for j in range(GU):
        g_bias[j] = <real>totals[j]
        if c.cell == GRU:
            g_bias[GU + j] = <real>totals[GU + j]
    if dx != NULL:
        gemm(False, True, n * T, c.D, GU, 1, dZ, GU, <const real*>c.kernel, GU, 0, dx, c.D)


cdef void rnn_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    cdef const RnnCfg* c = <const RnnCfg*>op.cfg
    if op.dtype == F32:
        rnn_forward(<float*>op.y, <float*>op.cache, <float*>op.work, <const float*>op.x, n, c)
    else:
        rnn_forward(<double*>op.y, <double*>op.cache, <double*>op.work, <const double*>op.x,
                    n, c)


cdef void rnn_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    cdef const RnnCfg* c = <const RnnCfg*>op.cfg
    if op.dtype == F32:
        rnn_backward(<float*>op.dx, <float*>op.grads[0], <float*>op.grads[1],
                     <float*>op.grads[2], <const float*>op.dy, <const float*>op.x,
                     <const float*>op.cache, <float*>op.work, op.state, n, c)
    else:
        rnn_backward(<double*>op.dx, <double*>op.grads[0], <double*>op.grads[1],
                     <double*>op.grads[2], <const double*>op.dy, <const double*>op.x,
                     <const double*>op.cache, <double*>op.work, op.state, n, c)


cdef class RecurrentOp:
    """Native recurrent layer ('simple', 'lstm' or 'gru') over (steps, D)
    samples.  kernel (D, G*U), recurrent (U, G*U), bias (G*U,) -- for the GRU
    (2, G*U) -- and their gradients: C-contiguous arrays of one dtype, the
    shapes checked by the layer."""
    cdef Op op
    cdef RnnCfg cfg
    cdef tuple arrays

    def __cinit__(self, str cell, kernel, recurrent, bias, g_kernel, g_recurrent, g_bias,
                  Py_ssize_t steps, bint return_sequences, bint go_backwards):
        self.arrays = (kernel, recurrent, bias, g_kernel, g_recurrent, g_bias)
        cdef RnnCfg* c = &self.cfg
        c.cell, c.G = CELLS[cell]
        c.T = steps
        c.D = kernel.shape[0]
        c.U = recurrent.shape[0]
        c.sequences, c.backwards = return_sequences, go_backwards
        c.kernel, c.recurrent, c.bias = address(kernel), address(recurrent), address(bias)
        cdef Py_ssize_t GU = c.G * c.U
        self.op.dtype = dtype_code(kernel)
        self.op.in_size = c.T * c.D
        self.op.out_size = c.T * c.U if return_sequences else c.U
        self.op.cache_size = c.T * (GU + 2 * c.U)
        self.op.work_size = c.T * GU + 2 * c.U + GU
        self.op.state_size = 2 * GU
        self.op.cfg = c
        self.op.forward = rnn_op_forward
        self.op.backward = rnn_op_backward
        declare_params(&self.op, ((kernel, g_kernel), (recurrent, g_recurrent),
                                  (bias, g_bias)))

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
