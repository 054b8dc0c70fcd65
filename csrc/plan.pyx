# The plan executor: runs a chain of native ops over preallocated buffers.
# A whole run of training steps (gather, forward, loss, backward, update) or a
# whole prediction is one call with the GIL released.
import numpy as np
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.stdint cimport int64_t, uint64_t
from cpython.pycapsule cimport PyCapsule_GetPointer
from core cimport Op, Loss, Updater, address, dtype_code
cimport rng


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
    cdef object loss_object, updater_object, targets
    cdef Loss* loss
    cdef Updater* updater
    cdef bint fused_sgd
    cdef Py_ssize_t n_params
    cdef void** params
    cdef void** grads
    cdef Py_ssize_t* param_sizes
    cdef list param_arrays

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
        self.acts = [np.empty((n, s), self.dtype) for s in sizes]
        self.deltas = [np.empty((n, s), self.dtype) for s in sizes]
        self.caches = [np.empty((n, max(self.ops[i].cache_size, 1)), self.dtype)
                       for i in range(self.n_ops)]
        for i in range(self.n_ops):
            work = max(work, self.ops[i].work_size)
        self.work = np.empty((n, max(work, 1)), self.dtype)
        if self.loss != NULL:
            self.targets = np.empty((n, max(self.loss.target_size, 1)), self.dtype)
        self.capacity = n
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

    cdef void _forward(self, Py_ssize_t n, bint training) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(self.n_ops):
            self.ops[i].forward(&self.ops[i], n, training)

    # backward through all ops; the first op computes dx only when asked
    cdef void _backward(self, Py_ssize_t n, bint input_grad, double sgd_lr) noexcept nogil:
        cdef Py_ssize_t i
        cdef void* first_dx = self.ops[0].dx
        if not input_grad:
            self.ops[0].dx = NULL
        for i in range(self.n_ops - 1, -1, -1):
            self.ops[i].sgd_lr = sgd_lr
            self.ops[i].backward(&self.ops[i], n)
            self.ops[i].sgd_lr = 0
        self.ops[0].dx = first_dx

    def forward(self, x, bint training=False):
        """Output (n, out_size) for x (n, in_size): a view of a plan buffer."""
        cdef Py_ssize_t n = x.shape[0]
        self.reserve(n)
        self.last_input = x
        self.ops[0].x = address(x)
        with nogil:
            self._forward(n, training)
        return self.acts[self.n_ops][:n]

    def backward(self, dy):
        """Gradient w.r.t. the input of the last `forward`, for dy (n, out_size).

        Fills the ops' gradient arrays; returns a view of a plan buffer."""
        cdef Py_ssize_t n = dy.shape[0]
        np.copyto(self.deltas[self.n_ops][:n], dy)
        with nogil:
            self._backward(n, True, 0.0)
        return self.deltas[0][:n]

    def predict(self, x, out, Py_ssize_t chunk=256):
        """out (N, out_size) = network output for x (N, in_size), run in chunks
        of at most `chunk` samples, writing straight into `out`."""
        cdef Py_ssize_t total = x.shape[0], start, n
        chunk = max(1, min(chunk, total))
        self.reserve(chunk)
        cdef Op* last = &self.ops[self.n_ops - 1]
        cdef char* src = <char*>address(x)
        cdef char* dst = <char*>address(out)
        cdef Py_ssize_t in_bytes = self.in_size * self.itemsize
        cdef Py_ssize_t out_bytes = self.out_size * self.itemsize
        with nogil:
            start = 0
            while start < total:
                n = min(chunk, total - start)
                self.ops[0].x = src + start * in_bytes
                last.y = dst + start * out_bytes
                self._forward(n, False)
                start += n
        self._wire()
        return out

    def set_training(self, loss, updater, list params, list grads):
        """Use this loss and optimizer for `train`; params/grads are the
        trainable arrays (in a fixed order) and their gradient arrays."""
        self.loss_object = loss
        self.updater_object = updater
        self.loss = <Loss*>PyCapsule_GetPointer(loss.capsule(), "nncore.Loss")
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
            self.targets = np.empty((self.capacity, max(self.loss.target_size, 1)),
                                    self.dtype)

    def train(self, x, y, int64_t[::1] order, Py_ssize_t batch_size,
              Py_ssize_t first_step, const double[::1] learning_rates,
              uint64_t[::1] shuffle_state=None):
        """Run len(learning_rates) training steps on x (N, in_size) and targets
        y (N, target_size).  Step s takes the samples order[k*batch_size : ...]
        with k = s % ceil(N / batch_size); at k == 0 a new epoch starts and,
        with a shuffle_state, `order` is shuffled in place first.
        Returns the mean loss of each step's batch (float64)."""
        if self.loss == NULL:
            raise RuntimeError("call set_training before train")
        self.reserve(batch_size)
        cdef Py_ssize_t steps = learning_rates.shape[0], total = order.shape[0]
        cdef Py_ssize_t per_epoch = (total + batch_size - 1) // batch_size
        cdef Py_ssize_t s, k, r, start, n, j
        cdef Py_ssize_t in_bytes = self.in_size * self.itemsize
        cdef Py_ssize_t target_bytes = self.loss.target_size * self.itemsize
        cdef char* xs = <char*>address(x)
        cdef char* ys = <char*>address(y)
        cdef char* inputs = <char*>address(self.acts[0])
        cdef char* targets = <char*>address(self.targets)
        cdef Op* last = &self.ops[self.n_ops - 1]
        cdef uint64_t* state = &shuffle_state[0] if shuffle_state is not None else NULL
        losses = np.empty(steps, np.float64)
        cdef double[::1] step_losses = losses
        with nogil:
            for s in range(steps):
                k = (first_step + s) % per_epoch
                if k == 0 and state != NULL:
                    rng.shuffle(&order[0], total, state)
                start = k * batch_size
                n = min(batch_size, total - start)
                for r in range(n):
                    j = order[start + r]
                    memcpy(inputs + r * in_bytes, xs + j * in_bytes, in_bytes)
                    memcpy(targets + r * target_bytes, ys + j * target_bytes, target_bytes)
                self._forward(n, True)
                step_losses[s] = self.loss.evaluate(self.loss, n, last.y, targets, last.dy)
                if self.fused_sgd:
                    self._backward(n, False, learning_rates[s])
                else:
                    self._backward(n, False, 0.0)
                    self.updater.learning_rate = learning_rates[s]
                    for j in range(self.n_params):
                        self.updater.update(self.updater, j, self.params[j], self.grads[j],
                                            self.param_sizes[j])
                    self.updater.step += 1
        return losses

    def last_batch(self, Py_ssize_t n):
        """(outputs (n, out_size), targets (n, target_size)) of the first n
        samples of the last `train` step: views of plan buffers."""
        return self.acts[self.n_ops][:n], self.targets[:n]


def evaluate_loss(loss, pred, target, dpred=None):
    """Mean loss of pred (n, size) against target (n, target_size); writes the
    gradient into dpred when given."""
    cdef Loss* c = <Loss*>PyCapsule_GetPointer(loss.capsule(), "nncore.Loss")
    cdef Py_ssize_t n = pred.shape[0]
    cdef void* p = address(pred)
    cdef void* t = address(target)
    cdef void* g = address(dpred) if dpred is not None else NULL
    cdef double value
    with nogil:
        value = c.evaluate(c, n, p, t, g)
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


def shuffle(int64_t[::1] order, uint64_t[::1] state):
    """Shuffle `order` in place exactly as `Plan.train` does at an epoch start."""
    rng.shuffle(&order[0], order.shape[0], &state[0])
