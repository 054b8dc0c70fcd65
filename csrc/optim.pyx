# Optimizer update kernels, applied in place to one parameter array at a time.
# Hyper-parameters follow Keras 3; weight decay is decoupled (applied to the
# weights, `param -= lr * weight_decay * param`, before the gradient step).
# Per-parameter state arrays (velocities, moments) are created by the Python
# optimizer at build time; the updater only keeps their addresses.
from libc.math cimport sqrt, sqrtf, pow, INFINITY
from libc.stdlib cimport malloc, free
from cpython.pycapsule cimport PyCapsule_New, PyCapsule_GetPointer
from core cimport real, Updater, F32, address, dtype_code

cdef enum Kind:
    SGD = 0
    ADAM = 1
    RMSPROP = 2
    ADAGRAD = 3

KINDS = {'sgd': SGD, 'adam': ADAM, 'rmsprop': RMSPROP, 'adagrad': ADAGRAD}


cdef struct OptimCfg:
    int kind
    double momentum       # SGD, RMSprop
    bint nesterov         # SGD
    bint amsgrad          # Adam
    double beta_1, beta_2, rho, epsilon
    double weight_decay
    double clipnorm       # per-parameter norm limit (0: off)
    double clipvalue      # element limit (0: off)
    double global_clipnorm  # norm limit over all gradients together (0: off)
    Py_ssize_t n_params
    Py_ssize_t* sizes     # (n_params) element count of each parameter
    void** pending_params # (n_params) this step's arrays, kept for global_clipnorm
    void** pending_grads
    void** state_a        # (n_params) first state array of each parameter or NULL
    void** state_b
    void** state_c


# grad (size) -> sum of squares, in four running sums (the loop pipelines)
cdef double sum_squares(const real* grad, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i, body = size - size % 4
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    for i in range(0, body, 4):
        s0 += <double>grad[i] * grad[i]
        s1 += <double>grad[i + 1] * grad[i + 1]
        s2 += <double>grad[i + 2] * grad[i + 2]
        s3 += <double>grad[i + 3] * grad[i + 3]
    for i in range(body, size):
        s0 += <double>grad[i] * grad[i]
    return (s0 + s1) + (s2 + s3)


cdef inline real r_sqrt(real v) noexcept nogil:
    if real is float:
        return sqrtf(v)
    else:
        return sqrt(v)


# The loops below are branch-free so that the compiler vectorizes them:
# clipping uses min/max against `clip` (+inf when off) and weight decay is a
# multiplication by keep = 1 - lr * weight_decay (1 when off).

# the gradient element as the step sees it: scaled, then clipped to +-clip
cdef inline real clipped(real g, real scale, real clip) noexcept nogil:
    g = g * scale
    g = g if g < clip else clip
    return g if g > -clip else -clip


# param, velocity (size) updated from grad (size); velocity NULL when momentum == 0
cdef void sgd_update(real* param, real* velocity, const real* grad, Py_ssize_t size,
                     real lr, real momentum, bint nesterov, real keep, real scale,
                     real clip) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g, v
    if velocity == NULL:
        for i in range(size):
            param[i] = param[i] * keep - lr * clipped(grad[i], scale, clip)
    elif nesterov:
        for i in range(size):
            g = clipped(grad[i], scale, clip)
            v = momentum * velocity[i] - lr * g
            velocity[i] = v
            param[i] = param[i] * keep + momentum * v - lr * g
    else:
        for i in range(size):
            v = momentum * velocity[i] - lr * clipped(grad[i], scale, clip)
            velocity[i] = v
            param[i] = param[i] * keep + v


# param, m, v, vhat (size) updated from grad (size); vhat NULL without amsgrad
cdef void adam_update(real* param, real* m, real* v, real* vhat, const real* grad,
                      Py_ssize_t size, real lr_t, real beta_1, real beta_2, real epsilon,
                      real keep, real scale, real clip) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g, mi, vi, top
    if vhat == NULL:
        for i in range(size):
            g = clipped(grad[i], scale, clip)
            mi = m[i] + (g - m[i]) * (1 - beta_1)
            vi = v[i] + (g * g - v[i]) * (1 - beta_2)
            m[i] = mi
            v[i] = vi
            param[i] = param[i] * keep - lr_t * mi / (r_sqrt(vi) + epsilon)
    else:
        for i in range(size):
            g = clipped(grad[i], scale, clip)
            mi = m[i] + (g - m[i]) * (1 - beta_1)
            vi = v[i] + (g * g - v[i]) * (1 - beta_2)
            top = vi if vi > vhat[i] else vhat[i]
            m[i] = mi
            v[i] = vi
            vhat[i] = top
            param[i] = param[i] * keep - lr_t * mi / (r_sqrt(top) + epsilon)


# param, mean_square, velocity (size) updated from grad (size); velocity NULL
# when momentum == 0
cdef void rmsprop_update(real* param, real* mean_square, real* velocity,
                         const real* grad, Py_ssize_t size, real lr, real rho,
                         real momentum, real epsilon, real keep, real scale,
                         real clip) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g, ms, step
    for i in range(size):
        g = clipped(grad[i], scale, clip)
        ms = rho * mean_square[i] + (1 - rho) * g * g
        mean_square[i] = ms
        step = lr * g / r_sqrt(ms + epsilon)
        if velocity != NULL:
            step = momentum * velocity[i] + step
            velocity[i] = step
        param[i] = param[i] * keep - step


# param, accumulator (size) updated from grad (size)
cdef void adagrad_update(real* param, real* accumulator, const real* grad,
                         Py_ssize_t size, real lr, real epsilon, real keep, real scale,
                         real clip) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g, acc
    for i in range(size):
        g = clipped(grad[i], scale, clip)
        acc = accumulator[i] + g * g
        accumulator[i] = acc
        param[i] = param[i] * keep - lr * g / r_sqrt(acc + epsilon)


# elements start..start+size-1 of one parameter stepped, its gradient first
# multiplied by `scale`
cdef void _apply(Updater* u, Py_ssize_t slot, real* param, const real* grad,
                 Py_ssize_t start, Py_ssize_t size, double scale) noexcept nogil:
    cdef OptimCfg* c = <OptimCfg*>u.cfg
    cdef double lr = u.learning_rate, norm, t, lr_t
    if c.clipnorm > 0:
        norm = sqrt(sum_squares(grad, size)) * scale
        if norm > c.clipnorm:
            scale *= c.clipnorm / norm
    cdef real keep = <real>(1 - lr * c.weight_decay)
    cdef real clip = <real>(c.clipvalue if c.clipvalue > 0 else INFINITY)
    cdef real* a = <real*>c.state_a[slot]
    cdef real* b = <real*>c.state_b[slot]
    cdef real* cc = <real*>c.state_c[slot]
    param += start
    grad += start
    a = a + start if a != NULL else NULL
    b = b + start if b != NULL else NULL
    cc = cc + start if cc != NULL else NULL
    if c.kind == SGD:
        sgd_update(param, a, grad, size, <real>lr, <real>c.momentum, c.nesterov, keep,
                   <real>scale, clip)
    elif c.kind == ADAM:
        t = u.step + 1
        lr_t = lr * sqrt(1 - pow(c.beta_2, t)) / (1 - pow(c.beta_1, t))
        adam_update(param, a, b, cc, grad, size, <real>lr_t, <real>c.beta_1,
                    <real>c.beta_2, <real>c.epsilon, keep, <real>scale, clip)
    elif c.kind == RMSPROP:
        rmsprop_update(param, a, b, grad, size, <real>lr, <real>c.rho, <real>c.momentum,
                       <real>c.epsilon, keep, <real>scale, clip)
    else:
        adagrad_update(param, a, grad, size, <real>lr, <real>c.epsilon, keep,
                       <real>scale, clip)


# Called for slots 0 .. n_params - 1 in order within a step (whole arrays
# unless piecewise).  With a global norm limit the updates wait for the last
# slot, when every gradient is known.
cdef void _update(Updater* u, Py_ssize_t slot, real* param, const real* grad,
                  Py_ssize_t start, Py_ssize_t size) noexcept nogil:
    cdef OptimCfg* c = <OptimCfg*>u.cfg
    cdef double norm = 0, scale = 1
    cdef Py_ssize_t j
    if c.global_clipnorm <= 0:
        _apply(u, slot, param, grad, start, size, 1)
        return
    c.pending_params[slot] = param
    c.pending_grads[slot] = <void*>grad
    if slot < c.n_params - 1:
        return
    for j in range(c.n_params):
        norm += sum_squares(<const real*>c.pending_grads[j], c.sizes[j])
    norm = sqrt(norm)
    if norm > c.global_clipnorm:
        scale = c.global_clipnorm / norm
    for j in range(c.n_params):
        _apply(u, j, <real*>c.pending_params[j], <const real*>c.pending_grads[j],
               0, c.sizes[j], scale)


cdef void optim_updater(Updater* u, Py_ssize_t slot, void* param, const void* grad,
                        Py_ssize_t start, Py_ssize_t size) noexcept nogil:
    if u.dtype == F32:
        _update(u, slot, <float*>param, <const float*>grad, start, size)
    else:
        _update(u, slot, <double*>param, <const double*>grad, start, size)


cdef class NativeUpdater:
    """An Updater record for plans (`capsule()`) and its step count."""
    cdef Updater updater
    cdef readonly bint fusable

    @property
    def step(self):
        """Number of completed steps (drives Adam's bias correction)."""
        return self.updater.step

    @step.setter
    def step(self, long value):
        self.updater.step = value

    def check_params(self, list params):
        """ValueError unless these are parameters of the sizes this step was
        set up for (an optimizer keeps state per parameter)."""

    def capsule(self):
        return PyCapsule_New(&self.updater, "nncore.Updater", NULL)


cdef class OptimUpdater(NativeUpdater):
    """The native step of one optimizer over a fixed list of parameters.

    `states` holds, per parameter, a tuple of up to three state arrays shaped
    like it (the kernel's a, b, c arguments; None for an unused one); `params`
    are the parameters in the order of the update slots.  `hyper` maps the
    OptimCfg field names to values.
    """
    cdef OptimCfg cfg
    cdef list arrays

    def __cinit__(self, str kind, dtype, list params, list states, dict hyper):
        self.updater.dtype = dtype_code(dtype)
        self.updater.update = optim_updater
        self.updater.cfg = &self.cfg
        self.fusable = False
        self.cfg.kind = KINDS[kind]
        self.cfg.momentum = hyper.get('momentum', 0)
        self.cfg.nesterov = hyper.get('nesterov', False)
        self.cfg.amsgrad = hyper.get('amsgrad', False)
        self.cfg.beta_1 = hyper.get('beta_1', 0)
        self.cfg.beta_2 = hyper.get('beta_2', 0)
        self.cfg.rho = hyper.get('rho', 0)
        self.cfg.epsilon = hyper.get('epsilon', 0)
        self.cfg.weight_decay = hyper.get('weight_decay', 0)
        self.cfg.clipnorm = hyper.get('clipnorm', 0)
        self.cfg.clipvalue = hyper.get('clipvalue', 0)
        self.cfg.global_clipnorm = hyper.get('global_clipnorm', 0)
        self.updater.piecewise = self.cfg.clipnorm <= 0 and self.cfg.global_clipnorm <= 0
        n = len(params)
        if len(states) != n:
            raise ValueError("one state tuple per parameter")
        self.arrays = [s for row in states for s in row]
        self.cfg.n_params = n
        m = max(n, 1)
        self.cfg.sizes = <Py_ssize_t*>malloc(m * sizeof(Py_ssize_t))
        self.cfg.pending_params = <void**>malloc(m * sizeof(void*))
        self.cfg.pending_grads = <void**>malloc(m * sizeof(void*))
        self.cfg.state_a = <void**>malloc(m * sizeof(void*))
        self.cfg.state_b = <void**>malloc(m * sizeof(void*))
        self.cfg.state_c = <void**>malloc(m * sizeof(void*))
        if (self.cfg.sizes == NULL or self.cfg.pending_params == NULL
                or self.cfg.pending_grads == NULL or self.cfg.state_a == NULL
                or self.cfg.state_b == NULL or self.cfg.state_c == NULL):
            raise MemoryError()
        for j in range(n):
            self.cfg.sizes[j] = params[j].size
            row = tuple(states[j]) + (None, None, None)
            self.cfg.state_a[j] = address(row[0]) if row[0] is not None else NULL
            self.cfg.state_b[j] = address(row[1]) if row[1] is not None else NULL
            self.cfg.state_c[j] = address(row[2]) if row[2] is not None else NULL

    def check_params(self, list params):
        """ValueError unless these are parameters of the sizes this step was
        set up for (its state arrays have those sizes)."""
        sizes = [self.cfg.sizes[j] for j in range(self.cfg.n_params)]
        if [p.size for p in params] != sizes:
            raise ValueError(
                f"the optimizer's state was made for {len(sizes)} parameter arrays of "
                f"{sum(sizes)} values, the network's layers now have {len(params)} of "
                f"{sum(p.size for p in params)}: were layers replaced after the network "
                f"was built? Call use(...) again to start the optimizer afresh")

    def __dealloc__(self):
        free(self.cfg.sizes)
        free(self.cfg.pending_params)
        free(self.cfg.pending_grads)
        free(self.cfg.state_a)
        free(self.cfg.state_b)
        free(self.cfg.state_c)


# param (size) -= lr * grad (size): the plain SGD step
cdef inline void sgd_step(real* param, const real* grad, Py_ssize_t size,
                          real lr) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        param[i] -= lr * grad[i]


cdef void sgd_updater(Updater* u, Py_ssize_t slot, void* param, const void* grad,
                      Py_ssize_t start, Py_ssize_t size) noexcept nogil:
    if u.dtype == F32:
        sgd_step(<float*>param + start, <const float*>grad + start, size,
                 <float>u.learning_rate)
    else:
        sgd_step(<double*>param + start, <const double*>grad + start, size,
                 u.learning_rate)


cdef class SGDUpdater(NativeUpdater):
    """Plain SGD.  Plans fuse it into the backward pass of the ops that can
    (dense layers) and run it for the parameters of the others."""

    def __cinit__(self, dtype):
        self.updater.dtype = dtype_code(dtype)
        self.updater.update = sgd_updater
        self.updater.piecewise = True
        self.fusable = True


def apply_update(updater, list params, list grads, double learning_rate):
    """One optimizer step over matching lists of parameter and gradient arrays
    (the Python training path; plans run the same step natively)."""
    cdef Updater* u = <Updater*>PyCapsule_GetPointer(updater.capsule(), "nncore.Updater")
    cdef Py_ssize_t j
    updater.check_params(params)
    if len(grads) != len(params) or any(g.size != p.size for g, p in zip(grads, params)):
        raise ValueError("one gradient array of each parameter's size is needed")
    u.learning_rate = learning_rate
    for j in range(len(params)):
        u.update(u, j, address(params[j]), address(grads[j]), 0, params[j].size)
    u.step += 1
