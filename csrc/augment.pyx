# Image augmentation for training: random affine resampling (flips,
# translations, rotations, zooms) with bilinear or nearest interpolation,
# random crops and additive Gaussian noise, on NHWC samples.  At inference the
# affine and noise ops are the identity and the crop takes the centre.
#
# Randomness (core.pxd: Op.key): the plan draws one 64-bit key per training
# batch from the layer's xoshiro256** state; sample r of the batch draws from
# a generator seeded with (key, draw_index(op, r)).  The draws of a sample
# depend on seed, step and its index in the batch only.
from libc.math cimport floor, cos, sin, sqrt, log, M_PI
from libc.string cimport memcpy, memset
from libc.stdint cimport uint64_t
from cpython.pycapsule cimport PyCapsule_New
from core cimport real, Op, F32, address, dtype_code, draw_index
cimport rng

cdef enum:
    FILL_REFLECT = 0
    FILL_WRAP = 1
    FILL_CONSTANT = 2
    FILL_NEAREST = 3
    AFFINE_COEFFS = 6

FILL_MODES = {"reflect": FILL_REFLECT, "wrap": FILL_WRAP, "constant": FILL_CONSTANT,
              "nearest": FILL_NEAREST}


cdef struct AugmentCfg:
    Py_ssize_t H, W, C          # input image
    Py_ssize_t h, w             # output image of a crop
    bint flip_h, flip_v
    double ty[2]                # translation ranges, fractions of H and W
    double tx[2]
    double rot[2]               # rotation range, fractions of a full turn
    double zy[2]                # zoom ranges (> -1; positive zooms out)
    double zx[2]
    bint same_zoom              # zx = zy
    int fill_mode
    double fill_value
    bint nearest                # nearest-neighbour instead of bilinear
    double stddev               # Gaussian noise


cdef inline double uniform(uint64_t* s, const double* bounds) noexcept nogil:
    return bounds[0] + (bounds[1] - bounds[0]) * rng.next_double(s)


# an index k outside 0..n-1 mapped by the fill mode (-1: the fill value)
cdef inline Py_ssize_t fill_index(Py_ssize_t k, Py_ssize_t n, int mode) noexcept nogil:
    cdef Py_ssize_t period
    if 0 <= k < n:
        return k
    if mode == FILL_CONSTANT:
        return -1
    if mode == FILL_NEAREST:
        return 0 if k < 0 else n - 1
    if mode == FILL_WRAP:
        k %= n
        return k + n if k < 0 else k
    period = 2 * n                      # reflect: d c b a | a b c d | d c b a
    k %= period
    if k < 0:
        k += period
    return k if k < n else period - 1 - k


# coeffs (6) of sample r: source column = c0 * j + c1 * i + c2, source row =
# c3 * j + c4 * i + c5 for output pixel (row i, column j)
cdef void draw_affine(double* c, const AugmentCfg* g, uint64_t key, Py_ssize_t r) noexcept nogil:
    cdef uint64_t s[4]
    cdef double fh, fv, ty, tx, angle, zy, zx, cy, cx, cs, sn, a00, a01, a10, a11, u0, v0
    rng.sample_state(s, key, r)
    fh = -1.0 if g.flip_h and rng.next_double(s) < 0.5 else 1.0
    fv = -1.0 if g.flip_v and rng.next_double(s) < 0.5 else 1.0
    ty = uniform(s, g.ty) * g.H
    tx = uniform(s, g.tx) * g.W
    angle = uniform(s, g.rot) * 2 * M_PI
    zy = 1 + uniform(s, g.zy)
    zx = zy if g.same_zoom else 1 + uniform(s, g.zx)
    cy = (g.H - 1) * 0.5
    cx = (g.W - 1) * 0.5
    cs = cos(angle)
    sn = sin(angle)
    # source = flip * zoom * rotate(-angle) (output - centre - shift) + centre,
    # rows pointing down (a positive angle turns the image counter-clockwise)
    a00 = fh * zx * cs
    a01 = -fh * zx * sn
    a10 = fv * zy * sn
    a11 = fv * zy * cs
    u0 = -cx - tx
    v0 = -cy - ty
    c[0] = a00
    c[1] = a01
    c[2] = a00 * u0 + a01 * v0 + cx
    c[3] = a10
    c[4] = a11
    c[5] = a10 * u0 + a11 * v0 + cy


# y (H, W, C) = x (H, W, C) resampled at the source points of coeffs (6);
# with dx != NULL instead dx (H, W, C) += the adjoint applied to dy (H, W, C)
cdef void affine_sample(real* y, real* dx, const real* x, const real* dy,
                        const double* c, const AugmentCfg* g) noexcept nogil:
    cdef Py_ssize_t H = g.H, W = g.W, C = g.C, i, j, ch, k, rows[2], cols[2], src
    cdef double sx, sy, fx, fy, weights[4], fill = g.fill_value, acc
    cdef int t
    for i in range(H):
        for j in range(W):
            sx = c[0] * j + c[1] * i + c[2]
            sy = c[3] * j + c[4] * i + c[5]
            if g.nearest:
                sx = floor(sx + 0.5)
                sy = floor(sy + 0.5)
            cols[0] = <Py_ssize_t>floor(sx)
            rows[0] = <Py_ssize_t>floor(sy)
            fx = sx - cols[0]
            fy = sy - rows[0]
            cols[1] = fill_index(cols[0] + 1, W, g.fill_mode)
            rows[1] = fill_index(rows[0] + 1, H, g.fill_mode)
            cols[0] = fill_index(cols[0], W, g.fill_mode)
            rows[0] = fill_index(rows[0], H, g.fill_mode)
            weights[0] = (1 - fy) * (1 - fx)
            weights[1] = (1 - fy) * fx
            weights[2] = fy * (1 - fx)
            weights[3] = fy * fx
            for ch in range(C):
                k = (i * W + j) * C + ch
                if dx == NULL:
                    acc = 0
                    for t in range(4):
                        if weights[t] == 0:
                            continue
                        if rows[t >> 1] < 0 or cols[t & 1] < 0:
                            acc += weights[t] * fill
                        else:
                            acc += weights[t] * x[(rows[t >> 1] * W + cols[t & 1]) * C + ch]
                    y[k] = <real>acc
                else:
                    for t in range(4):
                        if weights[t] != 0 and rows[t >> 1] >= 0 and cols[t & 1] >= 0:
                            src = (rows[t >> 1] * W + cols[t & 1]) * C + ch
                            dx[src] += <real>(weights[t] * dy[k])


# y (h, w, C) = the window of x (H, W, C) whose top-left corner is (top, left)
cdef void crop(real* y, const real* x, Py_ssize_t top, Py_ssize_t left,
               const AugmentCfg* g) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(g.h):
        memcpy(&y[i * g.w * g.C], &x[((top + i) * g.W + left) * g.C], g.w * g.C * sizeof(real))


# dx (H, W, C) = dy (h, w, C) placed at (top, left), zeros elsewhere
cdef void crop_backward(real* dx, const real* dy, Py_ssize_t top, Py_ssize_t left,
                        const AugmentCfg* g) noexcept nogil:
    cdef Py_ssize_t i
    memset(dx, 0, g.H * g.W * g.C * sizeof(real))
    for i in range(g.h):
        memcpy(&dx[((top + i) * g.W + left) * g.C], &dy[i * g.w * g.C], g.w * g.C * sizeof(real))


# y (size) = x + stddev * a standard normal draw per value (Box-Muller)
cdef void add_noise(real* y, const real* x, Py_ssize_t size, double stddev,
                    uint64_t key, Py_ssize_t r) noexcept nogil:
    cdef uint64_t s[4]
    cdef Py_ssize_t i
    cdef double u, v, radius
    rng.sample_state(s, key, r)
    for i in range(0, size, 2):
        u = 1.0 - rng.next_double(s)          # in (0, 1]
        v = rng.next_double(s)
        radius = stddev * sqrt(-2.0 * log(u))
        y[i] = x[i] + <real>(radius * cos(2 * M_PI * v))
        if i + 1 < size:
            y[i + 1] = x[i + 1] + <real>(radius * sin(2 * M_PI * v))


# op.state[0] (plan-owned): 1 when the last forward was a training forward
cdef void _affine_forward(Op* op, Py_ssize_t n, bint training, real* y) noexcept nogil:
    cdef const AugmentCfg* g = <const AugmentCfg*>op.cfg
    cdef const real* x = <const real*>op.x
    cdef double* coeffs
    cdef Py_ssize_t r, size = op.in_size
    op.state[0] = training
    if not training:
        memcpy(y, x, n * size * sizeof(real))
        return
    for r in range(n):
        coeffs = <double*>op.cache + r * AFFINE_COEFFS
        draw_affine(coeffs, g, op.key, draw_index(op, r))
        affine_sample(&y[r * size], NULL, &x[r * size], NULL, coeffs, g)


cdef void _affine_backward(Op* op, Py_ssize_t n, real* dx) noexcept nogil:
    cdef const AugmentCfg* g = <const AugmentCfg*>op.cfg
    cdef const real* dy = <const real*>op.dy
    cdef Py_ssize_t r, size = op.in_size
    if op.state[0] == 0:
        memcpy(dx, dy, n * size * sizeof(real))
        return
    memset(dx, 0, n * size * sizeof(real))
    for r in range(n):
        affine_sample(NULL, &dx[r * size], NULL, &dy[r * size],
                      <double*>op.cache + r * AFFINE_COEFFS, g)


cdef void _crop_forward(Op* op, Py_ssize_t n, bint training, real* y) noexcept nogil:
    cdef const AugmentCfg* g = <const AugmentCfg*>op.cfg
    cdef const real* x = <const real*>op.x
    cdef double* corner
    cdef uint64_t s[4]
    cdef Py_ssize_t r
    for r in range(n):
        corner = <double*>op.cache + 2 * r
        if training:
            rng.sample_state(s, op.key, draw_index(op, r))
            corner[0] = <double>(rng.next_u64(s) % <uint64_t>(g.H - g.h + 1))
            corner[1] = <double>(rng.next_u64(s) % <uint64_t>(g.W - g.w + 1))
        else:
            corner[0] = <double>((g.H - g.h) // 2)
            corner[1] = <double>((g.W - g.w) // 2)
        crop(&y[r * op.out_size], &x[r * op.in_size], <Py_ssize_t>corner[0],
             <Py_ssize_t>corner[1], g)


cdef void _crop_backward(Op* op, Py_ssize_t n, real* dx) noexcept nogil:
    cdef const AugmentCfg* g = <const AugmentCfg*>op.cfg
    cdef const double* corner
    cdef Py_ssize_t r
    for r in range(n):
        corner = <const double*>op.cache + 2 * r
        crop_backward(&dx[r * op.in_size], &(<const real*>op.dy)[r * op.out_size],
                      <Py_ssize_t>corner[0], <Py_ssize_t>corner[1], g)


cdef void _noise_forward(Op* op, Py_ssize_t n, bint training, real* y) noexcept nogil:
    cdef const AugmentCfg* g = <const AugmentCfg*>op.cfg
    cdef const real* x = <const real*>op.x
    cdef Py_ssize_t r, size = op.in_size
    if not training:
        memcpy(y, x, n * size * sizeof(real))
        return
    for r in range(n):
        add_noise(&y[r * size], &x[r * size], size, g.stddev, op.key, draw_index(op, r))


cdef void affine_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _affine_forward(op, n, training, <float*>op.y)
    else:
        _affine_forward(op, n, training, <double*>op.y)


cdef void affine_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dx == NULL:
        return
    if op.dtype == F32:
        _affine_backward(op, n, <float*>op.dx)
    else:
        _affine_backward(op, n, <double*>op.dx)


cdef void crop_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _crop_forward(op, n, training, <float*>op.y)
    else:
        _crop_forward(op, n, training, <double*>op.y)


cdef void crop_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dx == NULL:
        return
    if op.dtype == F32:
        _crop_backward(op, n, <float*>op.dx)
    else:
        _crop_backward(op, n, <double*>op.dx)


cdef void noise_op_forward(Op* op, Py_ssize_t n, bint training) noexcept nogil:
    if op.dtype == F32:
        _noise_forward(op, n, training, <float*>op.y)
    else:
        _noise_forward(op, n, training, <double*>op.y)


cdef void noise_op_backward(Op* op, Py_ssize_t n) noexcept nogil:
    if op.dx != NULL:
        memcpy(op.dx, op.dy, n * op.in_size * (sizeof(float) if op.dtype == F32
                                               else sizeof(double)))


cdef class AugmentOp:
    """A native augmentation op on (H, W, C) samples: kind 'affine' (keyword
    ranges flip_h, flip_v, ty, tx, rot, zy, zx, same_zoom, fill_mode,
    fill_value, nearest), 'crop' (crop=(h, w)) or 'noise' (stddev).  `state`
    is the layer's uint64 generator state (4 words), which plans advance."""
    cdef Op op
    cdef AugmentCfg cfg
    cdef object state

    def __cinit__(self, kind, dtype, shape, state, flip_h=False, flip_v=False,
                  ty=(0, 0), tx=(0, 0), rot=(0, 0), zy=(0, 0), zx=(0, 0), same_zoom=False,
                  fill_mode="reflect", fill_value=0.0, nearest=False, crop=None,
                  stddev=0.0):
        cdef Py_ssize_t H, W, C
        H, W, C = shape
        self.state = state
        self.op.generator = <uint64_t*>address(state)
        self.cfg.H, self.cfg.W, self.cfg.C = H, W, C
        self.cfg.h, self.cfg.w = crop if crop is not None else (H, W)
        self.cfg.flip_h, self.cfg.flip_v = flip_h, flip_v
        self.cfg.ty = ty
        self.cfg.tx = tx
        self.cfg.rot = rot
        self.cfg.zy = zy
        self.cfg.zx = zx
        self.cfg.same_zoom = same_zoom
        self.cfg.fill_mode = FILL_MODES[fill_mode]
        self.cfg.fill_value = fill_value
        self.cfg.nearest = nearest
        self.cfg.stddev = stddev
        self.op.dtype = dtype_code(dtype)
        self.op.in_size = H * W * C
        self.op.out_size = self.cfg.h * self.cfg.w * C
        self.op.cfg = &self.cfg
        itemsize = 4 if self.op.dtype == F32 else 8
        if kind == "affine":
            self.op.cache_size = AFFINE_COEFFS * 8 // itemsize   # doubles in the cache
            self.op.state_size = 1
            self.op.forward = affine_op_forward
            self.op.backward = affine_op_backward
        elif kind == "crop":
            self.op.cache_size = 2 * 8 // itemsize
            self.op.forward = crop_op_forward
            self.op.backward = crop_op_backward
        elif kind == "noise":
            self.op.forward = noise_op_forward
            self.op.backward = noise_op_backward
        else:
            raise ValueError(f"unknown augmentation {kind!r}")

    def capsule(self):
        return PyCapsule_New(&self.op, "nncore.Op", NULL)
