# The plan executor: runs a chain of native ops over preallocated buffers.
# A whole run of training steps (gather, forward, loss, backward, update) or a
# whole prediction is one call with the GIL released.
import numpy as np
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.stdint cimport int64_t, uint64_t
from cpython.pycapsule cimport PyCapsule_GetPointer
from core cimport real, Op, Loss, Updater, DenseCfg, OP_DENSE, F32, address, dtype_code
from blas cimport gemm
cimport rng

# samples per window of deferred first-layer updates in per-sample SGD
cdef Py_ssize_t WINDOW = 64


# P (K, n_out) = X (K, n_in) @ W + b;  G (K, K; rows WINDOW apart) = X @ X^T + 1
cdef void window_begin(real* P, real* G, const real* X, DenseCfg* c,
                       Py_ssize_t K) noexcept nogil:
    cdef Py_ssize_t t, j
    cdef real beta = 0
    if c.b != NULL:
        for t in range(K):
            memcpy(P + t * c.n_out, c.b, c.n_out * sizeof(real))
        beta = 1
    gemm(False, False, K, c.n_out, c.n_in, 1, X, c.n_in, <const real*>c.W, c.n_out,
         beta, P, c.n_out)
    gemm(False, True, K, K, c.n_in, 1, X, c.n_in, X, c.n_in, 0, G, WINDOW)
    if c.b != NULL:
        for t in range(K):
            for j in range(K):
                G[t * WINDOW + j] += 1


# y (n_out) = P[t] - sum_{j<t} rates[j] * G[t, j] * DY[j]
cdef void window_output(real* y, const real* P, const real* G, const real* DY,
                        const double* rates, Py_ssize_t t, Py_ssize_t n_out) noexcept nogil:
    cdef Py_ssize_t j, o
    cdef real scale
    memcpy(y, P + t * n_out, n_out * sizeof(real))
    for j in range(t):
        scale = <real>(rates[j] * G[t * WINDOW + j])
        for o in range(n_out):
            y[o] -= scale * DY[j * n_out + o]


# W (n_in, n_out) -= X^T (K, n_in)^T @ (rates * DY) (K, n_out);  b -= sum_t rates[t] DY[t]
cdef void window_end(DenseCfg* c, const real* X, real* DY, const double* rates,
                     Py_ssize_t K) noexcept nogil:
    cdef Py_ssize_t t, o
    cdef real* b = <real*>c.b
    for t in range(K):
        for o in range(c.n_out):
            DY[t * c.n_out + o] *= <real>rates[t]
    gemm(True, False, c.n_in, c.n_out, K, -1, X, c.n_in, DY, c.n_out, 1, <real*>c.W,
         c.n_out)
    if b != NULL:
        for t in range(K):
            for o in range(c.n_out):
                b[o] -= DY[t * c.n_out + o]


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts on a 64-byte
    boundary, so BLAS takes the same code path (and gives the same bits) for
    every plan's buffers."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(count * dtype.itemsize + 64, np.uint8)
    offset = (-raw.ctypes.data) % 64
    return raw[offset:offset + count * dtype.itemsize].view(dtype).reshape(shape)


cdef Op* _op_pointer(obj) except NULL:
    return <Op*>PyCapsule_GetPointer(obj.capsule(), "nncore.Op")


cdef class Plan:
    """A chain of native ops with activation, gradient and scratch buffers.

    Buffers grow to the largest batch seen (`reserve`) and are then reused; the
    plan keeps its own copy of each op record, so several plans may share ops.
    All arrays passed in are C-contiguous (n, size) arrays of the plan's dtype;
    the Python facade validates them before they get here.
    """
    cdef Op* ops
    cdef Py_ssize_t n_ops
    cdef list op_objects
    cdef readonly object dtype
    cdef readonly Py_ssize_t capacity, in_size, out_size, itemsize
    cdef list acts        # acts[i]: input of op i; acts[n_ops]: output
    cdef list deltas      # deltas[i]: gradient w.r.t. acts[i]
    cdef list caches
    cdef object work
    cdef object last_input
    # training set-up
    cdef object loss_object, updater_object, targets, weights
    cdef Loss loss_record     # the plan's copy: it points `weights` at its buffers
    cdef Loss* loss
    cdef Updater* updater
    cdef bint fused_sgd
    cdef Py_ssize_t n_params
    cdef void** params
    cdef void** grads
    cdef Py_ssize_t* param_sizes
    cdef list param_arrays
    cdef void* target_buffer
    cdef void* weight_buffer      # (capacity) weights of the batch being run
    cdef const char* weight_source  # (N) weights of the samples `train` runs on, or NULL
    cdef bint last_deferred   # the last train call used the deferred-update window
    # buffers of the deferred first-layer update (per-sample SGD)
    cdef object window_x, window_targets, window_weights, window_p, window_g, window_dy
    cdef object window_rates
    cdef void* window_x_ptr
    cdef void* window_targets_ptr
    cdef void* window_weights_ptr
    cdef void* window_p_ptr
    cdef void* window_g_ptr
    cdef void* window_dy_ptr
    cdef double* window_rates_ptr

    def __cinit__(self, list op_objects, dtype):
        if not op_objects:
            raise ValueError("a plan needs at least one op")
        self.op_objects = list(op_objects)
        self.n_ops = len(op_objects)
        self.dtype = np.dtype(dtype)
        self.itemsize = self.dtype.itemsize
        self.ops = <Op*>malloc(self.n_ops * sizeof(Op))
        if self.ops == NULL:
            raise MemoryError()
        for i, obj in enumerate(op_objects):
            memcpy(&self.ops[i], _op_pointer(obj), sizeof(Op))
            if self.ops[i].dtype != dtype_code(self.dtype):
                raise TypeError(f"op {i} has another dtype than the plan ({self.dtype})")
            if i and self.ops[i].in_size != self.ops[i - 1].out_size:
                raise ValueError(f"op {i} takes {self.ops[i].in_size} values per sample, "
                                 f"op {i - 1} gives {self.ops[i - 1].out_size}")
        self.in_size = self.ops[0].in_size
        self.out_size = self.ops[self.n_ops - 1].out_size
        self.capacity = 0

    def __dealloc__(self):
        free(self.ops)
        free(self.params)
        free(self.grads)
        free(self.param_sizes)

    def reserve(self, Py_ssize_t n):
        """Make the buffers hold at least n samples (they never shrink)."""
        if n <= self.capacity:
            return
        cdef Py_ssize_t i, work = 0
        sizes = [self.in_size] + [self.ops[i].out_size for i in range(self.n_ops)]
        self.acts = [aligned_empty((n, s), self.dtype) for s in sizes]
        self.deltas = [aligned_empty((n, s), self.dtype) for s in sizes]
        self.caches = [aligned_empty((n, max(self.ops[i].cache_size, 1)), self.dtype)
                       for i in range(self.n_ops)]
        for i in range(self.n_ops):
            work = max(work, self.ops[i].work_size)
        self.work = aligned_empty((n, max(work, 1)), self.dtype)
        self.capacity = n
        if self.loss != NULL:
            self._reserve_targets()
        self._wire()

    cdef void _wire(self):
        # point every op at the plan's own buffers
        cdef Py_ssize_t i
        for i in range(self.n_ops):
            self.ops[i].x = address(self.acts[i])
            self.ops[i].y = address(self.acts[i + 1])
            self.ops[i].dx = address(self.deltas[i])
            self.ops[i].dy = address(self.deltas[i + 1])
            self.ops[i].cache = address(self.caches[i])
            self.ops[i].work = address(self.work)

    # forward through ops first..last
    cdef void _forward(self, Py_ssize_t first, Py_ssize_t n, bint training) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(first, self.n_ops):
            self.ops[i].forward(&self.ops[i], n, training)

    # backward through ops last..first; op `first` computes dx only when asked
    cdef void _backward(self, Py_ssize_t first, Py_ssize_t n, bint input_grad,
                        double sgd_lr) noexcept nogil:
        cdef Py_ssize_t i
        if first >= self.n_ops:     # nothing after a deferred first op
            return
        cdef void* first_dx = self.ops[first].dx
        if not input_grad:
            self.ops[first].dx = NULL
        for i in range(self.n_ops - 1, first - 1, -1):
            self.ops[i].sgd_lr = sgd_lr
            self.ops[i].backward(&self.ops[i], n)
            self.ops[i].sgd_lr = 0
        self.ops[first].dx = first_dx

    def forward(self, x, bint training=False):
        """Output (n, out_size) for x (n, in_size): a view of a plan buffer."""
        cdef Py_ssize_t n = x.shape[0]
        self.reserve(n)
        self.last_input = x
        self.ops[0].x = address(x)
        with nogil:
            self._forward(0, n, training)
        return self.acts[self.n_ops][:n]

    def backward(self, dy):
        """Gradient w.r.t. the input of the last `forward`, for dy (n, out_size).

        Fills the ops' gradient arrays; returns a view of a plan buffer."""
        cdef Py_ssize_t n = dy.shape[0]
        np.copyto(self.deltas[self.n_ops][:n], dy)
        with nogil:
            self._backward(0, n, True, 0.0)
        return self.deltas[0][:n]

    def predict(self, x, out, Py_ssize_t chunk=256):
        """out (N, out_size) = network output for x (N, in_size), run in chunks
        of at most `chunk` samples, writing straight into `out`."""
        cdef Py_ssize_t total = x.shape[0], start, n
        chunk = max(1, min(chunk, total))
        self.reserve(chunk)
        cdef Op* first = &self.ops[0]
        cdef Op* last = &self.ops[self.n_ops - 1]
        cdef void* own_input = first.x
        cdef void* own_output = last.y
        cdef char* src = <char*>address(x)
        cdef char* dst = <char*>address(out)
        cdef Py_ssize_t in_bytes = self.in_size * self.itemsize
        cdef Py_ssize_t out_bytes = self.out_size * self.itemsize
        with nogil:
            start = 0
            while start < total:
                n = min(chunk, total - start)
                first.x = src + start * in_bytes
                last.y = dst + start * out_bytes
                self._forward(0, n, False)
                start += n
            first.x = own_input
            last.y = own_output
        return out

    def set_training(self, loss, updater, list params, list grads):
        """Use this loss and optimizer for `train`; params/grads are the
        trainable arrays (in a fixed order) and their gradient arrays."""
        self.loss_object = loss
        self.updater_object = updater
        memcpy(&self.loss_record, PyCapsule_GetPointer(loss.capsule(), "nncore.Loss"),
               sizeof(Loss))
        self.loss = &self.loss_record
        self.updater = <Updater*>PyCapsule_GetPointer(updater.capsule(), "nncore.Updater")
        self.fused_sgd = getattr(updater, 'fusable', False)
        self.param_arrays = list(params) + list(grads)
        self.n_params = len(params)
        free(self.params)
        free(self.grads)
        free(self.param_sizes)
        self.params = <void**>malloc(max(self.n_params, 1) * sizeof(void*))
        self.grads = <void**>malloc(max(self.n_params, 1) * sizeof(void*))
        self.param_sizes = <Py_ssize_t*>malloc(max(self.n_params, 1) * sizeof(Py_ssize_t))
        if self.params == NULL or self.grads == NULL or self.param_sizes == NULL:
            raise MemoryError()
        for i in range(self.n_params):
            self.params[i] = address(params[i])
            self.grads[i] = address(grads[i])
            self.param_sizes[i] = params[i].size
        if self.capacity:
            self._reserve_targets()
        self.window_x = None

    def _reserve_targets(self):
        self.targets = aligned_empty((self.capacity, max(self.loss.target_size, 1)),
                                     self.dtype)
        self.target_buffer = address(self.targets)
        self.weights = aligned_empty((self.capacity,), self.dtype)
        self.weight_buffer = address(self.weights)

    def train(self, x, y, int64_t[::1] order, Py_ssize_t batch_size,
              Py_ssize_t first_step, const double[::1] learning_rates,
              uint64_t[::1] shuffle_state=None, weights=None):
        """Run len(learning_rates) training steps on x (N, in_size) and targets
        y (N, target_size), with per-sample loss weights (N) when given.
        Step s takes the samples order[k*batch_size : ...]
        with k = s % ceil(N / batch_size); at k == 0 a new epoch starts and,
        with a shuffle_state, `order` is refilled with 0..N-1 and shuffled
        (see `shuffle`).  Per-sample plain SGD runs in windows of `WINDOW`
        steps aligned to the epoch (`step_alignment`), so results do not
        depend on how the steps are split into calls when the calls are too.
        Returns the mean loss of each step's batch (float64)."""
        if self.loss == NULL:
            raise RuntimeError("call set_training before train")
        self.reserve(batch_size)
        cdef Py_ssize_t steps = learning_rates.shape[0], total = order.shape[0]
        cdef Py_ssize_t per_epoch = (total + batch_size - 1) // batch_size
        cdef Py_ssize_t s = 0, k, count
        cdef const char* xs = <char*>address(x)
        cdef const char* ys = <char*>address(y)
        cdef uint64_t* state = &shuffle_state[0] if shuffle_state is not None else NULL
        cdef bint deferred = self.step_alignment(batch_size) > 1
        if deferred:
            self._reserve_window()
        self.last_deferred = deferred
        self._wire()
        self.weight_source = <const char*>address(weights) if weights is not None else NULL
        self.loss.weights = NULL
        losses = np.empty(steps, np.float64)
        cdef double[::1] step_losses = losses
        with nogil:
            while s < steps:
                k = (first_step + s) % per_epoch
                if k == 0 and state != NULL:
                    _new_order(&order[0], total, state)
                if deferred:
                    count = min(WINDOW - k % WINDOW, steps - s, per_epoch - k)
                    self._deferred_steps(xs, ys, &order[k], count, &learning_rates[s],
                                         &step_losses[s])
                else:
                    count = 1
                    step_losses[s] = self._step(xs, ys, &order[k * batch_size],
                                                min(batch_size, total - k * batch_size),
                                                learning_rates[s])
                s += count
        return losses

    def step_alignment(self, Py_ssize_t batch_size):
        """WINDOW when `train` defers the first layer's updates for this batch
        size (per-sample plain SGD with a dense first layer), else 1.  Calls
        that start and end at multiples of it within an epoch give results
        independent of how the steps are split into calls."""
        if (self.fused_sgd and batch_size == 1 and self.ops[0].kind == OP_DENSE
                and (<DenseCfg*>self.ops[0].cfg).n_in == self.in_size):
            return WINDOW
        return 1

    def last_batch(self, Py_ssize_t n):
        """(outputs (n, out_size), targets (n, target_size)) of a `train` call
        that ran one step of n samples: views of plan buffers."""
        targets = self.window_targets if self.last_deferred else self.targets
        return self.acts[self.n_ops][:n], targets[:n]

    # one training step on the n samples listed in index; returns the batch loss
    cdef double _step(self, const char* xs, const char* ys, const int64_t* index,
                      Py_ssize_t n, double learning_rate) noexcept nogil:
        cdef Py_ssize_t r, j
        cdef Op* last = &self.ops[self.n_ops - 1]
        cdef double loss
        self._gather(<char*>self.ops[0].x, <char*>self.target_buffer,
                     <char*>self.weight_buffer, xs, ys, index, n)
        self._forward(0, n, True)
        loss = self.loss.evaluate(self.loss, n, last.y, self.target_buffer, last.dy)
        if self.fused_sgd:
            self._backward(0, n, False, learning_rate)
        else:
            self._backward(0, n, False, 0.0)
            self.updater.learning_rate = learning_rate
            for j in range(self.n_params):
                self.updater.update(self.updater, j, self.params[j], self.grads[j],
                                    self.param_sizes[j])
            self.updater.step += 1
        return loss

    # copy the samples listed in index into input and target rows, and their
    # weights (when `train` has any) into weights, which the loss then reads
    cdef void _gather(self, char* inputs, char* targets, char* weights, const char* xs,
                      const char* ys, const int64_t* index, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t r
        cdef Py_ssize_t in_bytes = self.in_size * self.itemsize
        cdef Py_ssize_t target_bytes = self.loss.target_size * self.itemsize
        for r in range(n):
            memcpy(inputs + r * in_bytes, xs + index[r] * in_bytes, in_bytes)
            memcpy(targets + r * target_bytes, ys + index[r] * target_bytes, target_bytes)
        if self.weight_source != NULL:
            for r in range(n):
                memcpy(weights + r * self.itemsize,
                       self.weight_source + index[r] * self.itemsize, self.itemsize)
            self.loss.weights = weights

    def _reserve_window(self):
        if self.window_x is not None:
            return
        cdef DenseCfg* c = <DenseCfg*>self.ops[0].cfg
        self.window_x = aligned_empty((WINDOW, c.n_in), self.dtype)
        self.window_targets = aligned_empty((WINDOW, max(self.loss.target_size, 1)), self.dtype)
        self.window_weights = aligned_empty((WINDOW,), self.dtype)
        self.window_weights_ptr = address(self.window_weights)
        self.window_p = aligned_empty((WINDOW, c.n_out), self.dtype)
        self.window_g = aligned_empty((WINDOW, WINDOW), self.dtype)
        self.window_dy = aligned_empty((WINDOW, c.n_out), self.dtype)
        self.window_rates = np.empty(WINDOW, np.float64)
        self.window_x_ptr = address(self.window_x)
        self.window_targets_ptr = address(self.window_targets)
        self.window_p_ptr = address(self.window_p)
        self.window_g_ptr = address(self.window_g)
        self.window_dy_ptr = address(self.window_dy)
        self.window_rates_ptr = <double*>address(self.window_rates)

    # Per-sample plain SGD over `count` samples with the first dense layer's
    # update deferred to the end of the window.  Exact: with W_t = W_0 -
    # sum_{j<t} lr_j x_j^T dy_j (and the same for b), the layer's output for
    # sample t is x_t W_0 + b_0 - sum_{j<t} lr_j (x_t . x_j + 1) dy_j, so the
    # window needs two GEMMs over W instead of a gemv and a ger per sample.
    cdef void _deferred_steps(self, const char* xs, const char* ys, const int64_t* index,
                              Py_ssize_t count, const double* rates,
                              double* losses) noexcept nogil:
        cdef Py_ssize_t t
        cdef Op* first = &self.ops[0]
        cdef Op* last = &self.ops[self.n_ops - 1]
        cdef DenseCfg* c = <DenseCfg*>first.cfg
        cdef char* window_x = <char*>self.window_x_ptr
        cdef char* targets = <char*>self.window_targets_ptr
        cdef Py_ssize_t target_bytes = self.loss.target_size * self.itemsize
        cdef Py_ssize_t dy_bytes = c.n_out * self.itemsize
        cdef double* saved_rates = self.window_rates_ptr
        cdef char* weights = <char*>self.window_weights_ptr
        self._gather(window_x, targets, weights, xs, ys, index, count)
        if first.dtype == F32:
            window_begin(<float*>self.window_p_ptr, <float*>self.window_g_ptr,
                         <const float*>window_x, c, count)
        else:
            window_begin(<double*>self.window_p_ptr, <double*>self.window_g_ptr,
                         <const double*>window_x, c, count)
        for t in range(count):
            if first.dtype == F32:
                window_output(<float*>first.y, <const float*>self.window_p_ptr,
                              <const float*>self.window_g_ptr,
                              <const float*>self.window_dy_ptr, saved_rates, t, c.n_out)
            else:
                window_output(<double*>first.y, <const double*>self.window_p_ptr,
                              <const double*>self.window_g_ptr,
                              <const double*>self.window_dy_ptr, saved_rates, t, c.n_out)
            self._forward(1, 1, True)
            if self.weight_source != NULL:
                self.loss.weights = weights + t * self.itemsize
            losses[t] = self.loss.evaluate(self.loss, 1, last.y, targets + t * target_bytes,
                                           last.dy)
            self._backward(1, 1, True, rates[t])
            memcpy(<char*>self.window_dy_ptr + t * dy_bytes, first.dy, dy_bytes)
            saved_rates[t] = rates[t]
        if first.dtype == F32:
            window_end(c, <const float*>window_x, <float*>self.window_dy_ptr, saved_rates, count)
        else:
            window_end(c, <const double*>window_x, <double*>self.window_dy_ptr, saved_rates,
                       count)


def evaluate_loss(loss, pred, target, dpred=None, weights=None):
    """Mean loss of pred (n, size) against target (n, target_size), each
    sample weighted by weights (n) when given; writes the gradient into dpred
    when given."""
    cdef Loss c
    memcpy(&c, PyCapsule_GetPointer(loss.capsule(), "nncore.Loss"), sizeof(Loss))
    c.weights = address(weights) if weights is not None else NULL
    cdef Py_ssize_t n = pred.shape[0]
    cdef void* p = address(pred)
    cdef void* t = address(target)
    cdef void* g = address(dpred) if dpred is not None else NULL
    cdef double value
    with nogil:
        value = c.evaluate(&c, n, p, t, g)
    return value


def apply_update(updater, list params, list grads, double learning_rate):
    """One optimizer step over matching lists of parameter and gradient arrays."""
    cdef Updater* u = <Updater*>PyCapsule_GetPointer(updater.capsule(), "nncore.Updater")
    cdef Py_ssize_t j
    u.learning_rate = learning_rate
    for j in range(len(params)):
        u.update(u, j, address(params[j]), address(grads[j]), params[j].size)
    u.step += 1


def new_shuffle_state(uint64_t seed):
    """A generator state (4 uint64) for `Plan.train` and `shuffle`."""
    state = np.empty(4, np.uint64)
    cdef uint64_t[::1] words = state
    rng.seed_state(&words[0], seed)
    return state


# order (n) = a random permutation of 0..n-1 drawn from state
cdef void _new_order(int64_t* order, Py_ssize_t n, uint64_t* state) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        order[i] = i
    rng.shuffle(order, n, state)


def shuffle(int64_t[::1] order, uint64_t[::1] state):
    """Refill `order` with a random permutation of 0..N-1, exactly as
    `Plan.train` does at an epoch start (each epoch's order depends only on
    the generator state, not on the previous order)."""
    _new_order(&order[0], order.shape[0], &state[0])


# True when no element of a (count) is NaN or inf (x - x is 0 only for finite x)
cdef bint _all_finite(const real* a, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        if a[i] - a[i] != 0:
            return False
    return True


def all_finite(array):
    """True when no element of the contiguous float array is NaN or inf.

    Small arrays are checked without releasing the GIL: a release and
    re-acquire costs more than the check and hands the GIL to other threads."""
    cdef Py_ssize_t count = array.size
    cdef bint finite
    cdef const float* f
    cdef const double* d
    if dtype_code(array) == F32:
        f = <const float*>address(array)
        if count < 65536:
            return _all_finite(f, count)
        with nogil:
            finite = _all_finite(f, count)
    else:
        d = <const double*>address(array)
        if count < 65536:
            return _all_finite(d, count)
        with nogil:
            finite = _all_finite(d, count)
    return finite
