# A convolution (optionally with an activation) fused with the non-overlapping
# max pooling that follows it.  The convolution's own output is never stored,
# the positions the pool drops (a last odd row or column) are never computed,
# and an epilogue takes each window's maximum, adds the bias and applies the
# activation (non-decreasing, so they commute with the maximum), writing the
# pooled output directly.
# Samples go in cache-sized groups.  Two ways to compute the convolution:
#  * im2col of the positions the pool reads and one BLAS GEMM per group (for
#    one input channel, stride 1 and no padding, im2col is tap by tap: each
#    tap's values for an output row are a contiguous run of the input); in
#    training the epilogue also records which position of each window won, and
#    backward routes the gradient there: dY, then gW += cols^T dY and
#    dx = col2im(dY W^T), all on the pool's positions only;
#  * at inference, for 3x3 kernels with stride 1 and 2x2 pools, Winograd's
#    F(2x2, 3x3): each pool window is one 2x2 output tile, computed from a 4x4
#    input tile with 16 products per channel instead of 36, as 16 BLAS GEMMs
#    over the group's tiles (tiles x C) @ (C x F).
from libc.string cimport memcmp, memcpy, memset
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, dtype_code, declare_params, r_max, r_select
from epilogue cimport IDENTITY, activation_gradient, column_sums, epilogue_forward
from im2col cimport ConvCfg, GROUP_BYTES, col2im_row, im2col_row, set_geometry
from blas cimport gemm


cdef struct ConvPoolCfg:
    ConvCfg conv
    Py_ssize_t ph, pw          # pool window = pool stride
    Py_ssize_t PH, PW          # pooled output (PH, PW, F)
    bint winograd
    bint by_tap                # im2col tap by tap (one channel, stride 1, no padding)


cdef enum:
    # Winograd F(2x2, 3x3) needs enough channels, and enough tiles per call,
    # to make its 16 GEMMs worth their fixed costs
    WINOGRAD_MIN_CHANNELS = 8
    WINOGRAD_MIN_TILES = 16
    # groups at inference are this many times those of training: the scratch
    # is then written once per group and read by the GEMMs straight after, and
    # larger groups make fewer, larger GEMMs (Winograd's 16 per group have only
    # C as inner dimension); training keeps its cache-sized groups
    INFERENCE_GROUPS = 4


# cols (PH*PW*ph*pw, K) = im2col rows of x (H, W, C), window by window: the ph*pw
# positions of pooled output (i, j) are rows (i*PW + j)*ph*pw onwards
cdef void im2col_windows(real* cols, const real* x, const ConvPoolCfg* c) noexcept nogil:
    cdef Py_ssize_t i, j, a, b, K = c.conv.kh * c.conv.kw * c.conv.C
    for i in range(c.PH):
        for j in range(c.PW):
            for a in range(c.ph):
                for b in range(c.pw):
                    im2col_row(cols, x, &c.conv, i * c.ph + a, j * c.pw + b)
                    cols += K


# dx (H, W, C) += the rows of cols (PH*PW*ph*pw, K) put back where im2col_windows
# took them
cdef void col2im_windows(real* dx, const real* cols, const ConvPoolCfg* c) noexcept nogil:
    cdef Py_ssize_t i, j, a, b, K = c.conv.kh * c.conv.kw * c.conv.C
    for i in range(c.PH):
        for j in range(c.PW):
            for a in range(c.ph):
                for b in range(c.pw):
                    col2im_row(dx, cols, &c.conv, i * c.ph + a, j * c.pw + b)
                    cols += K


# cols (K, n*M) = the im2col rows of the M = PH*ph * PW*pw positions the pool
# reads of samples x (n, H, W, 1), in row-major position order, as columns:
# tap (u, v) of output row oh is the input run x[oh + u, v : v + PW*pw]
cdef void im2col_by_tap(real* cols, const real* x, Py_ssize_t n,
                        const ConvPoolCfg* c) noexcept nogil:
    cdef Py_ssize_t s, u, v, oh, ow, OH = c.PH * c.ph, OW = c.PW * c.pw
    cdef Py_ssize_t M = OH * OW, H = c.conv.H, W = c.conv.W
    cdef real* dst
    cdef const real* src
    for u in range(c.conv.kh):
        for v in range(c.conv.kw):
            for s in range(n):
                for oh in range(OH):
                    dst = cols + (u * c.conv.kw + v) * n * M + s * M + oh * OW
                    src = x + s * H * W + (oh + u) * W + v
                    for ow in range(OW):
                        dst[ow] = src[ow]


# Rows holding the M = PH*ph * PW*pw positions of each of n samples go window
# by window (row_major False) or row by row (True).  Position q (= a*pw + b)
# of pool window p (= (s*PH + i)*PW + j) is then row
# window_start(p) + window_offset(q).
cdef inline Py_ssize_t window_start(Py_ssize_t p, const ConvPoolCfg* c,
                                    bint row_major) noexcept nogil:
    if not row_major:
        return p * c.ph * c.pw
    return (p // c.PW) * c.ph * c.PW * c.pw + (p % c.PW) * c.pw


cdef inline Py_ssize_t window_offset(Py_ssize_t q, const ConvPoolCfg* c,
                                     bint row_major) noexcept nogil:
    return (q // c.pw) * c.PW * c.pw + q % c.pw if row_major else q


# y (n, PH, PW, F) = f(max over each pool window of Y + bias), Y (n*M, F)
# in the order row_major says (window_start); with arg (n, PH, PW, F) not NULL,
# arg = the first position (a*pw + b) of each window holding its maximum
cdef void window_max_epilogue(real* y, real* arg, const real* Y, Py_ssize_t n,
                              const ConvPoolCfg* c, bint row_major) noexcept nogil:
    cdef Py_ssize_t p, q, f, F = c.conv.F
    cdef const real* first
    cdef const real* row
    cdef real* won
    for p in range(n * c.PH * c.PW):
        first = Y + window_start(p, c, row_major) * F
        for f in range(F):
            y[f] = first[f]
        won = arg + p * F if arg != NULL else NULL
        if won != NULL:
            memset(won, 0, F * sizeof(real))
        for q in range(1, c.ph * c.pw):
            row = first + window_offset(q, c, row_major) * F
            if won != NULL:
                for f in range(F):
                    won[f] = r_select(row[f] > y[f], <real>q, won[f])
            for f in range(F):
                y[f] = r_max(y[f], row[f])
        epilogue_forward(y, <const real*>c.conv.bias, 1, F, c.conv.activation,
                         <real>c.conv.alpha)
        y += F


# dY (n*M, F) = dy (n, PH, PW, F) routed to the winning position arg (n, PH,
# PW, F) of each window, 0 elsewhere; rows in the order row_major says
# (window_start)
cdef void route_gradient(real* dY, const real* dy, const real* arg, Py_ssize_t n,
                         const ConvPoolCfg* c, bint row_major) noexcept nogil:
    cdef Py_ssize_t p, q, f, F = c.conv.F
    cdef real* first
    cdef real* row
    for p in range(n * c.PH * c.PW):
        first = dY + window_start(p, c, row_major) * F
        for q in range(c.ph * c.pw):
            row = first + window_offset(q, c, row_major) * F
            for f in range(F):
                row[f] = r_select(arg[p * F + f] == q, dy[p * F + f], <real>0)


# U (16, C, F) = G g G^T for every (c, f) of the kernel g (3, 3, C, F), with
# G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]; rows (12, F): scratch
cdef void winograd_kernel(real* U, real* rows, const real* g, Py_ssize_t C,
                          Py_ssize_t F) noexcept nogil:
    cdef Py_ssize_t c, f, i, q, CF = C * F
    cdef const real* k
    cdef real* r
    for c in range(C):
        for i in range(3):                  # row i of g G^T: rows[4 i + q]
            k = g + i * 3 * CF + c * F
            r = rows + 4 * i * F
            for f in range(F):
                r[f] = k[f]
                r[F + f] = (k[f] + k[CF + f] + k[2 * CF + f]) / 2
                r[2 * F + f] = (k[f] - k[CF + f] + k[2 * CF + f]) / 2
                r[3 * F + f] = k[2 * CF + f]
        for q in range(4):                  # G (g G^T), column q
            for f in range(F):
                U[q * CF + c * F + f] = rows[q * F + f]
                U[(4 + q) * CF + c * F + f] = (rows[q * F + f] + rows[(4 + q) * F + f]
                                               + rows[(8 + q) * F + f]) / 2
                U[(8 + q) * CF + c * F + f] = (rows[q * F + f] - rows[(4 + q) * F + f]
                                               + rows[(8 + q) * F + f]) / 2
                U[(12 + q) * CF + c * F + f] = rows[(8 + q) * F + f]


# row r of (B^T d) B, where row r of B^T d is tile row a minus (or, when not
# subtract, plus) tile row b; a, b: 4 positions of C values each, v: rows
# 4r..4r+3 of V, TC apart
cdef inline void tile_rows(real* v, const real* a, const real* b, bint subtract,
                           Py_ssize_t r, Py_ssize_t C, Py_ssize_t TC) noexcept nogil:
    cdef Py_ssize_t k
    cdef real e0, e1, e2, e3, sign = -1 if subtract else 1
    v += 4 * r * TC
    for k in range(C):
        e0 = a[k] + sign * b[k]
        e1 = a[C + k] + sign * b[C + k]
        e2 = a[2 * C + k] + sign * b[2 * C + k]
        e3 = a[3 * C + k] + sign * b[3 * C + k]
        v[k] = e0 - e2
        v[TC + k] = e1 + e2
        v[2 * TC + k] = e2 - e1
        v[3 * TC + k] = e1 - e3


# V (16, T, C) = B^T d B for the 4x4 input tile d of every pool window of the n
# samples of x (T = n * PH * PW tiles), with B^T = [[1, 0, -1, 0], [0, 1, 1, 0],
# [0, -1, 1, 0], [0, 1, 0, -1]].  A tile inside the image is read in place (its
# rows are runs of 4C values of x, W*C apart); one that overlaps the padding is
# copied into tile (16, C), zeros outside the image
cdef void winograd_tiles(real* V, real* tile, const real* x, Py_ssize_t n,
                         Py_ssize_t sample, const ConvPoolCfg* c) noexcept nogil:
    cdef Py_ssize_t s, i, j, r, ih, iw, q0, q1, t = 0, C = c.conv.C
    cdef Py_ssize_t TC = n * c.PH * c.PW * C, step
    cdef real* v
    cdef const real* d
    for s in range(n):
        for i in range(c.PH):
            for j in range(c.PW):
                iw = 2 * j - c.conv.pl
                ih = 2 * i - c.conv.pt
                q0 = max(0, -iw)
                q1 = min(4, c.conv.W - iw)
                if q0 == 0 and q1 == 4 and ih >= 0 and ih + 4 <= c.conv.H:
                    d = x + s * sample + (ih * c.conv.W + iw) * C
                    step = c.conv.W * C
                else:
                    for r in range(4):
                        memset(tile + 4 * r * C, 0, 4 * C * sizeof(real))
                        if 0 <= ih + r < c.conv.H and q1 > q0:
                            memcpy(tile + (4 * r + q0) * C,
                                   x + s * sample + ((ih + r) * c.conv.W + iw + q0) * C,
                                   (q1 - q0) * C * sizeof(real))
                    d = tile
                    step = 4 * C
                v = V + t * C
                tile_rows(v, d, d + 2 * step, 1, 0, C, TC)            # d0 - d2
                tile_rows(v, d + step, d + 2 * step, 0, 1, C, TC)     # d1 + d2
                tile_rows(v, d + 2 * step, d + step, 1, 2, C, TC)     # d2 - d1
                tile_rows(v, d + step, d + 3 * step, 1, 3, C, TC)     # d1 - d3
                t += 1


# y (T, F) = f(max of the 2x2 tile A^T m A + bias) for every tile, m (16, T, F) the
# products; A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
cdef void winograd_pooled(real* y, const real* m, const real* bias, Py_ssize_t T,
                          Py_ssize_t F, const ConvCfg* c) noexcept nogil:
    cdef Py_ssize_t t, f, TF = T * F
    cdef real a0, a1, a2, a3, b0, b1, b2, b3, y00, y01, y10, y11
    cdef const real* p
    for t in range(T):
        p = m + t * F
        for f in range(F):
            a0 = p[f] + p[4 * TF + f] + p[8 * TF + f]
            a1 = p[TF + f] + p[5 * TF + f] + p[9 * TF + f]
            a2 = p[2 * TF + f] + p[6 * TF + f] + p[10 * TF + f]
            a3 = p[3 * TF + f] + p[7 * TF + f] + p[11 * TF + f]
            b0 = p[4 * TF + f] - p[8 * TF + f] - p[12 * TF + f]
            b1 = p[5 * TF + f] - p[9 * TF + f] - p[13 * TF + f]
            b2 = p[6 * TF + f] - p[10 * TF + f] - p[14 * TF + f]
            b3 = p[7 * TF + f] - p[11 * TF + f] - p[15 * TF + f]
            y00 = a0 + a1 + a2
            y01 = a1 - a2 - a3
            y10 = b0 + b1 + b2
            y11 = b1 - b2 - b3
            y[t * F + f] = r_max(r_max(y00, y01), r_max(y10, y11))
    epilogue_forward(y, bias, T, F, c.activation, <real>c.alpha)


# y (n, PH, PW, F) through Winograd; work: V (16, T, C), m (16, T, F); kept by
# the plan (op.keep): U (16, C, F) from winograd_kernel, then a tile (16, C)
cdef void _winograd_forward(Op* op, Py_ssize_t n, real* y, const real* x,
                            real* work) noexcept nogil:
    cdef const ConvPoolCfg* c = <const ConvPoolCfg*>op.cfg
    cdef Py_ssize_t k, C = c.conv.C, F = c.conv.F, T = n * c.PH * c.PW
    cdef real* U = <real*>op.keep
    cdef real* tile = U + 16 * C * F
    cdef real* V = work
    cdef real* m = work + 16 * T * C
    winograd_tiles(V, tile, x, n, op.in_size, c)
    for k in range(16):
        gemm(False, False, T, F, C, 1, V + k * T * C, C, U + k * C * F, F, 0, m + k * T * F, F)
    winograd_pooled(y, m, <const real*>c.conv.bias, T, F, &c.conv)


# y (n, PH, PW, F) = maxpool(f(conv(x (n, H, W, C)) + bias)); work: (n, rows, K + F)
# arg: (n, PH, PW, F) winning rows, recorded in training (NULL at inference)
cdef void _forward(Op* op, Py_ssize_t n, real* y, real* arg, const real* x, real* work,
                   bint winograd) noexcept nogil:
    cdef const ConvPoolCfg* c = <const ConvPoolCfg*>op.cfg
    cdef Py_ssize_t s, Q = c.ph * c.pw, P = c.PH * c.PW, F = c.conv.F
    cdef Py_ssize_t K = c.conv.kh * c.conv.kw * c.conv.C, rows = P * Q
    cdef real* cols = work
    cdef real* Y = work + n * rows * K
    if winograd:
        _winograd_forward(op, n, y, x, work)
        return
    if c.by_tap:
        im2col_by_tap(cols, x, n, c)
        gemm(True, False, n * rows, F, K, 1, cols, n * rows, <const real*>c.conv.kernel, F,
             0, Y, F)
    else:
        for s in range(n):
            im2col_windows(cols + s * rows * K, x + s * op.in_size, c)
        gemm(False, False, n * rows, F, K, 1, cols, K, <const real*>c.conv.kernel, F, 0, Y, F)
    window_max_epilogue(y, arg, Y, n, c, c.by_tap)


# g_kernel (K, F) (+)= cols^T dY and dx (n, H, W, C) = col2im(dY kernel^T) for n
# samples whose output gradient is dy (n, PH, PW, F); the first group overwrites
# g_kernel, the others add to it
cdef void _backward(Op* op, Py_ssize_t n, real* dx, const real* dy, const real* x,
                    const real* arg, real* work, bint first) noexcept nogil:
    cdef const ConvPoolCfg* c = <const ConvPoolCfg*>op.cfg
    cdef Py_ssize_t s, Q = c.ph * c.pw, P = c.PH * c.PW, F = c.conv.F
    cdef Py_ssize_t K = c.conv.kh * c.conv.kw * c.conv.C, rows = P * Q
    cdef real* cols = work
    cdef real* dY = work + n * rows * K
    cdef bint by_tap = c.by_tap and dx == NULL      # col2im needs rows window by window
    route_gradient(dY, dy, arg, n, c, by_tap)
    if by_tap:
        im2col_by_tap(cols, x, n, c)
        gemm(False, False, K, F, n * rows, 1, cols, n * rows, dY, F, 0 if first else 1,
             <real*>op.grads[0], F)
        return
    for s in range(n):
        im2col_windows(cols + s * rows * K, x + s * op.in_size, c)
    gemm(True, False, K, F, n * rows, 1, cols, K, dY, F, 0 if first else 1,
         <real*>op.grads[0], F)
    if dx == NULL:
        return
    gemm(False, True, n * rows, K, F, 1, dY, F, <const real*>c.conv.kernel, F, 0, cols, K)
    memset(dx, 0, n * op.in_size * sizeof(real))
    for s in range(n):
        col2im_windows(dx + s * op.in_size, cols + s * rows * K, c)


# the samples in groups of at most op.work_group in training, INFERENCE_GROUPS
# times that at inference (the op's scratch holds either); Winograd at inference when the
# groups have enough tiles.  The plan keeps for the op (op.keep) U (16, C, F),
# the tile (16, C), rows (12, F) and the kernel (9, C, F) that U was
# transformed from: U is transformed again only when the kernel has changed.
cdef void _grouped(Op* op, Py_ssize_t n, real* y, real* arg, const real* x,
                   real* work) noexcept nogil:
    cdef const ConvPoolCfg* c = <const ConvPoolCfg*>op.cfg
    cdef Py_ssize_t s = 0, g, C = c.conv.C, F = c.conv.F
    cdef Py_ssize_t group = op.work_group * (1 if arg != NULL else INFERENCE_GROUPS)
    cdef real* U = <real*>op.keep
    cdef real* rows = U + 16 * (C * F + C)
    cdef real* source = rows + 12 * F
    cdef bint winograd = (c.winograd and arg == NULL and
                          min(n, group) * c.PH * c.PW >= WINOGRAD_MIN_TILES)
    if winograd and memcmp(source, c.conv.kernel, 9 * C * F * sizeof(real)) != 0:
        winograd_kernel(U, rows, <const real*>c.conv.kernel, C, F)
        memcpy(source, c.conv.kernel, 9 * C * F * sizeof(real))
    while s < n:
        g = min(group, n - s)
        _forward(op, g, y + s * op.out_size, arg + s * op.out_size if arg != NULL else NULL,
                 x + s * op.in_size, work, winograd)
        s += g


# the samples in groups, after multiplying dy (n, PH, PW, F) in place by the
# activation's derivative and taking the bias gradient (its column sums, in
# double in the op's state)
cdef void _grouped_backward(Op* op, Py_ssize_t n, real* dx, real* dy,
                            const real* x, const real* y, const real* arg,
                            real* work) noexcept nogil:
    cdef const ConvPoolCfg* c = <const ConvPoolCfg*>op.cfg
    cdef Py_ssize_t s = 0, g, f
    cdef real* g_bias = <real*>op.grads[1] if c.conv.bias != NULL else NULL
    if c.conv.activation != IDENTITY:
        activation_gradient(dy, dy, y, n * op.out_size, c.conv.activation, <real>c.conv.alpha)
    if c.conv.bias != NULL:
        column_sums(op.state, dy, n * c.PH * c.PW, c.conv.F, 1)
        for f in range(c.conv.F):
            g_bias[f] = <real>op.state[f]
    while s < n:
        g = min(op.work_group, n - s)
        _backward(op, g, dx + s * op.in_size if dx != NULL else NULL, dy + s * op.out_size,
                  x + s * op.in_size, arg + s * op.out_size, work, s == 0)
        s += g


cdef void convpool_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _grouped(op, n, <float*>op.y, <float*>op.cache if training else NULL,
                 <const float*>op.x, <float*>op.work)
    else:
        _grouped(op, n, <double*>op.y, <double*>op.cache if training else NULL,
                 <const double*>op.x, <double*>op.work)


cdef void convpool_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dtype == F32:
        _grouped_backward(op, n, <float*>op.dx, <float*>op.dy, <const float*>op.x,
                          <const float*>op.y, <const float*>op.cache, <float*>op.work)
    else:
        _grouped_backward(op, n, <double*>op.dx, <double*>op.dy, <const double*>op.x,
                          <const double*>op.y, <const double*>op.cache, <double*>op.work)


cdef class ConvPoolOp:
    """Native op for a convolution (kernel, g_kernel (kh, kw, C, F); bias,
    g_bias (F,) or None; an optional non-decreasing element-wise activation
    of epilogue.pxd, alpha its slope below 0) followed by max pooling with
    window = stride = pool and no padding.  The geometry is validated by the caller
    (the layers)."""
    cdef Op op
    cdef ConvPoolCfg cfg
    cdef tuple arrays

    def __cinit__(self, kernel, bias, g_kernel, g_bias, input_hw, output_hw, strides,
                  padding_top_left, int activation, double alpha, pool):
        self.arrays = (kernel, bias, g_kernel, g_bias)
        cdef ConvCfg* c = &self.cfg.conv
        set_geometry(c, kernel, bias, input_hw, output_hw, strides,
                     padding_top_left, activation, alpha)
        self.cfg.ph, self.cfg.pw = pool
        self.cfg.PH, self.cfg.PW = c.OH // self.cfg.ph, c.OW // self.cfg.pw
        rows = self.cfg.PH * self.cfg.PW * self.cfg.ph * self.cfg.pw
        self.cfg.winograd = (c.kh == c.kw == 3 and c.sh == c.sw == 1 and self.cfg.ph == 2
                             and self.cfg.pw == 2 and c.C >= WINOGRAD_MIN_CHANNELS)
        self.cfg.by_tap = c.C == 1 and c.sh == c.sw == 1 and c.pt == c.pl == 0
        self.op.dtype = dtype_code(kernel)
        self.op.in_size = c.H * c.W * c.C
        self.op.out_size = self.cfg.PH * self.cfg.PW * c.F
        self.op.cache_size = self.op.out_size          # the winning rows, in training
        self.op.state_size = c.F                       # the bias gradient's sums
        self.op.work_size = rows * (c.kh * c.kw * c.C + c.F)
        if self.cfg.winograd:
            self.op.work_size = max(self.op.work_size,
                                    16 * self.cfg.PH * self.cfg.PW * (c.C + c.F))
            # U, a tile, kernel rows and the kernel U came from
            self.op.keep_size = (16 * (c.F + 1) + 9 * c.F) * c.C + 12 * c.F
        # training groups of about GROUP_BYTES of scratch; the scratch of one
        # holds INFERENCE_GROUPS times as many samples at inference
        self.op.work_group = max(1, GROUP_BYTES // (self.op.work_size * kernel.itemsize))
        self.op.work_size *= INFERENCE_GROUPS
        self.op.cfg = &self.cfg
        self.op.forward = convpool_op_forward
        self.op.backward = convpool_op_backward
        declare_params(&self.op, ((kernel, g_kernel), (bias, g_bias)))

    @property
    def winograd(self):
        """True when the convolution runs as Winograd's F(2x2, 3x3) at inference
        (for calls of at least WINOGRAD_MIN_TILES pool windows)."""
        return bool(self.cfg.winograd)

    @property
    def by_tap(self):
        """True when the forward's im2col goes tap by tap (one input channel,
        stride 1, no padding)."""
        return bool(self.cfg.by_tap)

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
