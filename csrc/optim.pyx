# Optimizer update kernels, applied in place to one parameter array at a time.
# Hyper-parameters follow Keras 3; weight decay is decoupled (applied to the
# weights, `param -= lr * weight_decay * param`, before the gradient step).
# Per-parameter state arrays (velocities, moments) are created by the Python
# optimizer at build time; the updater only keeps their addresses.
from libc.math cimport sqrt, pow
from libc.stdlib cimport malloc, free
from cpython.pycapsule cimport PyCapsule_New
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
    double global_scale   # factor from global_clipnorm, computed at slot 0
    Py_ssize_t n_params
    void** grads          # (n_params) every gradient, for global_clipnorm
    Py_ssize_t* sizes     # (n_params)
    void** state_a        # (n_params) first state array of each parameter or NULL
    void** state_b
    void** state_c


# grad (size) -> sum of squares
cdef double sum_squares(const real* grad, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    cdef double total = 0
    for i in range(size):
        total += <double>grad[i] * grad[i]
    return total


# the gradient element as the step sees it: scaled, then clipped to +-clip
cdef inline real clipped(real g, real scale, real clip) noexcept nogil:
    g = g * scale
    if clip > 0:
        if g > clip:
            return clip
        if g < -clip:
            return -clip
    return g


# param, velocity (size) updated from grad (size); velocity NULL when momentum == 0
cdef void sgd_update(real* param, real* velocity, const real* grad, Py_ssize_t size,
                     real lr, real momentum, bint nesterov, real decay, real scale,
                     real clip) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g, v
    for i in range(size):
        g = clipped(grad[i], scale, clip)
        param[i] -= decay * param[i]
        if velocity == NULL:
            param[i] -= lr * g
        else:
            v = momentum * velocity[i] - lr * g
            velocity[i] = v
            if nesterov:
                param[i] += momentum * v - lr * g
            else:
                param[i] += v


# param, m, v, vhat (size) updated from grad (size); vhat NULL without amsgrad
cdef void adam_update(real* param, real* m, real* v, real* vhat, const real* grad,
                      Py_ssize_t size, real lr_t, real beta_1, real beta_2, real epsilon,
                      real decay, real scale, real clip) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g, denom
    for i in range(size):
        g = clipped(grad[i], scale, clip)
        param[i] -= decay * param[i]
        m[i] += (g - m[i]) * (1 - beta_1)
        v[i] += (g * g - v[i]) * (1 - beta_2)
        denom = v[i]
        if vhat != NULL:
            if v[i] > vhat[i]:
                vhat[i] = v[i]
            denom = vhat[i]
        param[i] -= lr_t * m[i] / (<real>sqrt(denom) + epsilon)


# param, mean_square, velocity (size) updated from grad (size); velocity NULL
# when momentum == 0
cdef void rmsprop_update(real* param, real* mean_square, real* velocity,
                         const real* grad, Py_ssize_t size, real lr, real rho,
                         real momentum, real epsilon, real decay, real scale,
                         real clip) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g, step
    for i in range(size):
        g = clipped(grad[i], scale, clip)
        param[i] -= decay * param[i]
        mean_square[i] = rho * mean_square[i] + (1 - rho) * g * g
        step = lr * g / <real>sqrt(mean_square[i] + epsilon)
        if velocity != NULL:
            velocity[i] = momentum * velocity[i] + step
            step = velocity[i]
        param[i] -= step


# param, accumulator (size) updated from grad (size)
cdef void adagrad_update(real* param, real* accumulator, const real* grad,
                         Py_ssize_t size, real lr, real epsilon, real decay, real scale,
                         real clip) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g
    for i in range(size):
        g = clipped(grad[i], scale, clip)
        param[i] -= decay * param[i]
        accumulator[i] += g * g
        param[i] -= lr * g / <real>sqrt(accumulator[i] + epsilon)


cdef double _sum_squares(int dtype, const void* grad, Py_ssize_t size) noexcept nogil:
    if dtype == F32:
        return sum_squares(<const float*>grad, size)
    return sum_squares(<const double*>grad, size)


cdef void _update(Updater* u, Py_ssize_t slot, real* param, const real* grad,
                  Py_ssize_t size) noexcept nogil:
    cdef OptimCfg* c = <OptimCfg*>u.cfg
    cdef double lr = u.learning_rate, scale = 1, norm, t
    cdef Py_ssize_t j
    if c.global_clipnorm > 0:
        if slot == 0:
            norm = 0
            for j in range(c.n_params):
                norm += _sum_squares(u.dtype, c.grads[j], c.sizes[j])
            norm = sqrt(norm)
            c.global_scale = c.global_clipnorm / norm if norm > c.global_clipnorm else 1
        scale = c.global_scale
    if c.clipnorm > 0:
        norm = sqrt(sum_squares(grad, size)) * scale
        if norm > c.clipnorm:
            scale *= c.clipnorm / norm
    cdef real decay = <real>(lr * c.weight_decay)
    cdef real* a = <real*>c.state_a[slot]
    cdef real* b = <real*>c.state_b[slot]
    cdef real* cc = <real*>c.state_c[slot]
    if c.kind == SGD:
        sgd_update(param, a, grad, size, <real>lr, <real>c.momentum, c.nesterov, decay,
                   <real>scale, <real>c.clipvalue)
    elif c.kind == ADAM:
        t = u.step + 1
        lr = lr * sqrt(1 - pow(c.beta_2, t)) / (1 - pow(c.beta_1, t))
        adam_update(param, a, b, cc, grad, size, <real>lr, <real>c.beta_1, <real>c.beta_2,
                    <real>c.epsilon, decay, <real>scale, <real>c.clipvalue)
    elif c.kind == RMSPROP:
        rmsprop_update(param, a, b, grad, size, <real>lr, <real>c.rho, <real>c.momentum,
                       <real>c.epsilon, decay, <real>scale, <real>c.clipvalue)
    else:
        adagrad_update(param, a, grad, size, <real>lr, <real>c.epsilon, decay,
                       <real>scale, <real>c.clipvalue)


cdef void optim_updater(Updater* u, Py_ssize_t slot, void* param, const void* grad,
                        Py_ssize_t size) noexcept nogil:
    if u.dtype == F32:
        _update(u, slot, <float*>param, <const float*>grad, size)
    else:
        _update(u, slot, <double*>param, <const double*>grad, size)


cdef class OptimUpdater:
    """The native step of one optimizer over a fixed list of parameters.

    `states` holds, per parameter, a tuple of up to three state arrays shaped
    like it (the kernel's a, b, c arguments; None for an unused one); `grads`
    are the gradient arrays in the same order.  `hyper` maps the OptimCfg
    field names to values.
    """
    cdef Updater updater
    cdef OptimCfg cfg
    cdef readonly bint fusable
    cdef list arrays

    def __cinit__(self, str kind, dtype, list grads, list states, dict hyper):
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
        n = len(grads)
        if len(states) != n:
            raise ValueError("one state tuple per gradient")
        self.arrays = list(grads) + [s for row in states for s in row]
        self.cfg.n_params = n
        m = max(n, 1)
        self.cfg.grads = <void**>malloc(m * sizeof(void*))
        self.cfg.sizes = <Py_ssize_t*>malloc(m * sizeof(Py_ssize_t))
        self.cfg.state_a = <void**>malloc(m * sizeof(void*))
        self.cfg.state_b = <void**>malloc(m * sizeof(void*))
        self.cfg.state_c = <void**>malloc(m * sizeof(void*))
        if (self.cfg.grads == NULL or self.cfg.sizes == NULL or self.cfg.state_a == NULL
                or self.cfg.state_b == NULL or self.cfg.state_c == NULL):
            raise MemoryError()
        for j in range(n):
            self.cfg.grads[j] = address(grads[j])
            self.cfg.sizes[j] = grads[j].size
            row = tuple(states[j]) + (None, None, None)
            self.cfg.state_a[j] = address(row[0]) if row[0] is not None else NULL
            self.cfg.state_b[j] = address(row[1]) if row[1] is not None else NULL
            self.cfg.state_c[j] = address(row[2]) if row[2] is not None else NULL

    def __dealloc__(self):
        free(self.cfg.grads)
        free(self.cfg.sizes)
        free(self.cfg.state_a)
        free(self.cfg.state_b)
        free(self.cfg.state_c)

    @property
    def step(self):
        """Number of completed steps (drives Adam's bias correction)."""
        return self.updater.step

    @step.setter
    def step(self, long value):
        self.updater.step = value

    def capsule(self):
        return PyCapsule_New(&self.updater, "nncore.Updater", NULL)


# param (size) -= learning_rate * grad (size)
cdef void plain_sgd_update(real* param, const real* grad, Py_ssize_t size,
                           real learning_rate) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        param[i] -= learning_rate * grad[i]


cdef void sgd_updater(Updater* u, Py_ssize_t slot, void* param, const void* grad,
                      Py_ssize_t size) noexcept nogil:
    if u.dtype == F32:
        plain_sgd_update(<float*>param, <const float*>grad, size, <float>u.learning_rate)
    else:
        plain_sgd_update(<double*>param, <const double*>grad, size, u.learning_rate)


cdef class SGDUpdater:
    """Plain SGD.  Plans fuse it into the backward pass of ops with parameters."""
    cdef Updater updater
    cdef readonly bint fusable

    def __cinit__(self, dtype):
        self.updater.dtype = dtype_code(dtype)
        self.updater.update = sgd_updater
        self.fusable = True

    @property
    def step(self):
        return self.updater.step

    @step.setter
    def step(self, long value):
        self.updater.step = value

    def capsule(self):
        return PyCapsule_New(&self.updater, "nncore.Updater", NULL)
