# The plan executor: runs a chain of native ops over buffers it owns.  A
# whole run of training steps (gather, forward, loss, backward, update) or a
# whole prediction is one call with the GIL released.
#
# Threads: kernels are serial functions of the samples they are given; the
# plan alone decides what runs in parallel.  `predict` hands whole chunks of
# samples to `workers` OpenMP threads, each with its own copy of the op
# records and its own buffers.  Training splits a batch into shards whose
# number depends on the batch size, `max_shards` and `min_shard_rows` only;
# `training_workers` threads run the shards' forward and backward on op
# records of their own (core.pxd), ops that need the whole batch run over
# all of it in between, and the shards' gradients are added in a fixed
# order before one optimizer step.  So results do not depend on the number
# of threads.  Wherever several workers run, BLAS runs single-threaded
# inside them, which the caller arranges.
import numpy as np
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.stdint cimport int64_t, uint64_t
from cpython.pycapsule cimport PyCapsule_GetPointer
from core cimport Op, Loss, Updater, Penalty, SampleWindow, WINDOW, address, dtype_code
from blas cimport axpy
from runtime cimport (now_seconds, pause_briefly, flag_get, flag_set, counter_add,
                      signals_due, PyErr_CheckSignals)
cimport rng

cdef enum:
    MAX_WORKERS = 64
    SUM_PIECE = 16384       # values of a gradient that one worker adds up at a time


# The fork gate.  A fork while another thread is inside threaded BLAS leaves
# the BLAS thread pool broken (the parent can deadlock in the runtime's fork
# handler, the child in its next call).  Every native section that may call
# BLAS runs between gate_enter() and gate_leave(); before a fork, gate_close()
# stops new sections from starting and waits until the running ones have
# left, so the fork happens with no nncore code inside BLAS.  Sections are
# short (one chunk of samples or one training step).
cdef int gate_busy = 0       # sections running now
cdef int gate_closed = 0     # a fork is waiting for the sections to end


cdef inline void gate_enter() noexcept nogil:
    while True:
        counter_add(&gate_busy, 1)
        if not flag_get(&gate_closed):
            return
        counter_add(&gate_busy, -1)
        while flag_get(&gate_closed):
            pause_briefly()


cdef inline void gate_leave() noexcept nogil:
    counter_add(&gate_busy, -1)


# 1 when no section is running (and none can start until fork_parent), 0 when
# sections were still running after `timeout` seconds
cdef int gate_close(double timeout) noexcept nogil:
    cdef double deadline = now_seconds() + timeout
    flag_set(&gate_closed, 1)
    while flag_get(&gate_busy) > 0:
        if now_seconds() > deadline:
            return 0
        pause_briefly()
    return 1


# An uninitialised C-contiguous array starting on a 64-byte boundary, so BLAS
# takes the same code path (and gives the same bits) for every plan's buffers.
cdef object aligned_empty(shape, dtype):
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(count * dtype.itemsize + 64, np.uint8)
    offset = (-raw.ctypes.data) % 64
    return raw[offset:offset + count * dtype.itemsize].view(dtype).reshape(shape)


# forward through ops[first..n_ops-1] for n samples
cdef void _forward_ops(Op* ops, Py_ssize_t first, Py_ssize_t n_ops, Py_ssize_t n,
                       bint training) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(first, n_ops):
        ops[i].forward(&ops[i], n, training)


# backward through ops[last-1..first] for n samples
cdef void _backward_ops(Op* ops, Py_ssize_t first, Py_ssize_t last,
                        Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(last - 1, first - 1, -1):
        ops[i].backward(&ops[i], n)


# dst (size) += src (size), float32 when single, else float64
cdef void _add(void* dst, const void* src, Py_ssize_t size, bint single) noexcept nogil:
    if single:
        axpy(<int>size, <float>1, <const float*>src, <float*>dst)
    else:
        axpy(<int>size, <double>1, <const double*>src, <double*>dst)


cdef class WindowBuffers      # below


cdef Op* _op_pointer(obj) except NULL:
    return <Op*>PyCapsule_GetPointer(obj.capsule(), "nncore.Op")


cdef class Plan:
    """A chain of native ops with the buffers that running them needs.

    The plan copies each op record and owns everything a run writes: the
    activations, gradients, per-sample caches, per-op state, scratch and the
    pointers to them; the op objects' records are only read.  So plans that
    share ops may run at the same time, or interleaved, without seeing each
    other's state.  Buffers grow to the largest batch seen (`reserve`) and are
    then reused.  All arrays passed in are C-contiguous (n, size) arrays of
    the plan's dtype; the Python facade validates them before they get here.
    Given `check_bytes`, the plan calls check_bytes(nbytes, what) before it
    allocates buffers of nbytes bytes (which may refuse by raising).
    """
    cdef Op* ops           # the op records of worker 0, which also trains
    cdef Op* worker_ops[MAX_WORKERS]   # [w]: the op records of prediction worker w
    cdef int n_workers
    cdef Py_ssize_t worker_capacity
    cdef list worker_buffers
    cdef Py_ssize_t n_ops
    cdef list op_objects
    cdef readonly object dtype
    cdef readonly Py_ssize_t capacity, in_size, out_size, itemsize
    cdef readonly Py_ssize_t sample_bytes   # activation bytes per sample of a forward
    cdef list acts        # acts[i]: input of op i; acts[n_ops]: output
    cdef list deltas      # deltas[i]: gradient w.r.t. acts[i]
    cdef tuple buffers    # everything worker 0's op records point at
    # training set-up
    cdef object loss_object, updater_object, targets, weights
    cdef Loss loss_record     # the plan's copy: it points `weights` at its buffers
    cdef Loss* loss
    cdef Updater* updater
    cdef bint plain_sgd   # the updater is plain SGD (and no penalty): ops that can, fuse it
    cdef bint step_in_pieces  # the updater is piecewise (and no penalty): a sharded step
                              # updates each piece of the gradients once it is added up
    cdef list penalty_objects     # the weight penalties added after backward
    cdef Penalty* penalties
    cdef Py_ssize_t n_penalties
    cdef void* target_buffer
    cdef void* weight_buffer      # (capacity) weights of the batch being run
    cdef const char* weight_source  # (N) weights of the samples `train` runs on, or NULL
    cdef WindowBuffers window     # for a deferred first-op update, once used
    cdef bint last_deferred   # the last train call used the window
    # a predict interrupted by a signal: the flag stops its workers, the
    # exception the signal handler raised is re-raised when they have stopped
    cdef int interrupted
    cdef object interruption
    cdef object check_bytes   # check_bytes(nbytes, what) before buffers are allocated
    # sharded training: shard w runs the op records shard_ops[w] (pointing into
    # rows shard_start[w]..shard_start[w+1]-1 of the plan's buffers) and its
    # copy of the loss
    cdef public int max_shards
    cdef public Py_ssize_t min_shard_rows     # a shard has at least this many samples
    cdef public int training_workers
    cdef Op* shard_ops[MAX_WORKERS]
    cdef Loss shard_loss[MAX_WORKERS]
    cdef double shard_value[MAX_WORKERS]
    cdef Py_ssize_t shard_start[MAX_WORKERS + 1]
    cdef int n_shard_records
    cdef Py_ssize_t shard_capacity
    cdef list shard_buffers   # [w]: the buffers shard w owns
    cdef object sum_pieces    # (pieces, 5): op, parameter, offset, length and optimizer
    cdef const int64_t* pieces  # slot of a piece of the shards' gradients that one worker
                                # adds up (and steps)
    cdef Py_ssize_t n_pieces

    def __cinit__(self, list op_objects, dtype, check_bytes=None):
        if not op_objects:
            raise ValueError("a plan needs at least one op")
        self.check_bytes = check_bytes
        self.op_objects = list(op_objects)
        self.n_ops = len(op_objects)
        self.dtype = np.dtype(dtype)
        self.itemsize = self.dtype.itemsize
        self.ops = <Op*>malloc(self.n_ops * sizeof(Op))
        if self.ops == NULL:
            raise MemoryError()
        for i, obj in enumerate(op_objects):
            memcpy(&self.ops[i], _op_pointer(obj), sizeof(Op))
            self.ops[i].index = i
            if self.ops[i].dtype != dtype_code(self.dtype):
                raise TypeError(f"op {i} has another dtype than the plan ({self.dtype})")
            if i and self.ops[i].in_size != self.ops[i - 1].out_size:
                raise ValueError(f"op {i} takes {self.ops[i].in_size} values per sample, "
                                 f"op {i - 1} gives {self.ops[i - 1].out_size}")
        self.in_size = self.ops[0].in_size
        self.out_size = self.ops[self.n_ops - 1].out_size
        self.sample_bytes = self.itemsize * (self.in_size + sum(
            [self.ops[i].out_size + self.ops[i].cache_size for i in range(self.n_ops)]))
        self.capacity = 0
        self.worker_ops[0] = self.ops
        self.n_workers = 1
        self.max_shards = 1
        self.min_shard_rows = 16
        self.training_workers = 1

    def __dealloc__(self):
        cdef int w
        for w in range(1, self.n_workers):
            free(self.worker_ops[w])
        for w in range(self.n_shard_records):
            free(self.shard_ops[w])
        free(self.ops)
        free(self.penalties)

    def reserve(self, Py_ssize_t n):
        """Make the buffers hold at least n samples (they never shrink)."""
        if n <= self.capacity:
            return
        self.buffers = self._own_buffers(self.ops, n)
        self.acts, self.deltas = self.buffers[0], self.buffers[1]
        self.capacity = n
        if self.loss != NULL:
            self._reserve_targets()

    cdef tuple _own_buffers(self, Op* ops, Py_ssize_t n):
        # buffers for n samples, with the op records pointing at them:
        # (activations, gradients, caches, states, work, kept caches)
        cdef Py_ssize_t i, work = 0
        sizes = [self.in_size] + [ops[i].out_size for i in range(self.n_ops)]
        per_sample = 2 * sum(sizes)          # activations and their gradients
        for i in range(self.n_ops):
            work = max(work, ops[i].work_size * (min(n, ops[i].work_group)
                                                 if ops[i].work_group else n))
            per_sample += max(ops[i].cache_size, 1)
        if self.check_bytes is not None:
            self.check_bytes((n * per_sample + max(work, 1)) * self.itemsize,
                             f"buffers for a batch of {n} samples")
        buffers = ([aligned_empty((n, s), self.dtype) for s in sizes],
                   [aligned_empty((n, s), self.dtype) for s in sizes],
                   [aligned_empty((n, max(ops[i].cache_size, 1)), self.dtype)
                    for i in range(self.n_ops)],
                   [np.zeros(max(ops[i].state_size, 1)) for i in range(self.n_ops)],
                   aligned_empty((max(work, 1),), self.dtype),
                   [np.zeros(max(ops[i].keep_size, 1), self.dtype) for i in range(self.n_ops)])
        acts, deltas, caches, states, work_buffer, kept = buffers
        for i in range(self.n_ops):
            ops[i].x = address(acts[i])
            ops[i].y = address(acts[i + 1])
            ops[i].dx = address(deltas[i])
            ops[i].dy = address(deltas[i + 1])
            ops[i].cache = address(caches[i])
            ops[i].state = <double*>address(states[i])
            ops[i].keep = address(kept[i])
            ops[i].work = address(work_buffer)
        return buffers

    def _reserve_workers(self, int count, Py_ssize_t chunk):
        # prediction workers 1..count-1: op records and buffers of their own
        if count <= self.n_workers and chunk <= self.worker_capacity:
            return
        cdef int w
        for w in range(1, self.n_workers):
            free(self.worker_ops[w])
        self.n_workers = 1
        self.worker_buffers = []
        for w in range(1, count):
            self.worker_ops[w] = <Op*>malloc(self.n_ops * sizeof(Op))
            if self.worker_ops[w] == NULL:
                raise MemoryError()
            memcpy(self.worker_ops[w], self.ops, self.n_ops * sizeof(Op))
            self.n_workers = w + 1
            self.worker_buffers.append(self._own_buffers(self.worker_ops[w], chunk))
        self.worker_capacity = chunk

    def shard_count(self, Py_ssize_t n):
        """The number of shards a training batch of n samples runs in."""
        return self._shard_count(n)

    cdef int _shard_count(self, Py_ssize_t n) noexcept nogil:
        return <int>max(1, min(<Py_ssize_t>self.max_shards, n // self.min_shard_rows,
                               <Py_ssize_t>MAX_WORKERS))

    def _reserve_batch_shards(self, Py_ssize_t batch_size):
        # shards for batches of up to batch_size samples: a batch of n runs in
        # count(n) = min(max_shards, n // min_shard_rows) shards of at most
        # ceil(n / count(n)) samples, which is below 2 * min_shard_rows while
        # count(n) < max_shards
        cdef int count = self._shard_count(batch_size)
        if count > 1:
            self._reserve_shards(count, max(2 * self.min_shard_rows - 1,
                                            -(-batch_size // count)))

    def _reserve_shards(self, int count, Py_ssize_t rows):
        # op records for `count` shards of at most `rows` samples: their
        # states, scratch and kept caches, and for shards 1.. the gradients
        if count <= self.n_shard_records and rows <= self.shard_capacity:
            return
        cdef int w
        cdef Py_ssize_t i, j, work = 0, grad_bytes = 0
        cdef Op* ops
        for i in range(self.n_ops):
            work = max(work, self.ops[i].work_size * (min(rows, self.ops[i].work_group)
                                                      if self.ops[i].work_group else rows))
            for j in range(self.ops[i].n_params):
                grad_bytes += self.ops[i].param_sizes[j] * self.itemsize
        if self.check_bytes is not None:
            self.check_bytes(count * max(work, 1) * self.itemsize + (count - 1) * grad_bytes,
                             f"gradients and scratch of {count} training shards")
        for w in range(self.n_shard_records):
            free(self.shard_ops[w])
        self.n_shard_records = 0
        self.shard_buffers = []
        for w in range(count):
            ops = <Op*>malloc(self.n_ops * sizeof(Op))
            if ops == NULL:
                raise MemoryError()
            memcpy(ops, self.ops, self.n_ops * sizeof(Op))
            self.shard_ops[w] = ops
            self.n_shard_records = w + 1
            owned = ([np.zeros(max(ops[i].state_size, 1)) for i in range(self.n_ops)],
                     aligned_empty((max(work, 1),), self.dtype),
                     [np.zeros(max(ops[i].keep_size, 1), self.dtype) for i in range(self.n_ops)],
                     [])
            for i in range(self.n_ops):
                ops[i].state = <double*>address(owned[0][i])
                ops[i].work = address(owned[1])
                ops[i].keep = address(owned[2][i])
                ops[i].sgd_lr = 0
                for j in range(ops[i].n_params if w else 0):
                    grad = aligned_empty((ops[i].param_sizes[j],), self.dtype)
                    owned[3].append(grad)
                    ops[i].grads[j] = address(grad)
            self.shard_buffers.append(owned)
        self.shard_capacity = rows
        slots = np.cumsum([0] + [self.ops[i].n_params for i in range(self.n_ops)])
        pieces = [(i, j, start, min(SUM_PIECE, self.ops[i].param_sizes[j] - start),
                   slots[i] + j)
                  for i in range(self.n_ops) if not self.ops[i].whole_batch
                  for j in range(self.ops[i].n_params)
                  for start in range(0, self.ops[i].param_sizes[j], SUM_PIECE)]
        self.sum_pieces = np.array(pieces or [(0, 0, 0, 0, 0)], np.int64)
        self.pieces = <const int64_t*>address(self.sum_pieces)
        self.n_pieces = len(pieces)

    # shard w's records pointed at its rows of the plan's buffers, and its
    # rows of the batch gathered from the samples listed in index
    cdef void _shard_begin(self, int w, const char* xs, const char* ys,
                           const int64_t* index) noexcept nogil:
        cdef Py_ssize_t i, start = self.shard_start[w], n = self.shard_start[w + 1] - start
        cdef Op* base
        cdef Op* rec
        cdef Loss* loss = &self.shard_loss[w]
        for i in range(self.n_ops):
            base = &self.ops[i]
            rec = &self.shard_ops[w][i]
            rec.x = <char*>base.x + start * base.in_size * self.itemsize
            rec.y = <char*>base.y + start * base.out_size * self.itemsize
            rec.dx = <char*>base.dx + start * base.in_size * self.itemsize if i else NULL
            rec.dy = <char*>base.dy + start * base.out_size * self.itemsize
            rec.cache = <char*>base.cache + start * base.cache_size * self.itemsize
            rec.key = base.key
            rec.first = start
            rec.draw_ids = base.draw_ids
        memcpy(loss, self.loss, sizeof(Loss))
        loss.weights = NULL
        if self.weight_source != NULL:
            loss.weights = <char*>self.weight_buffer + start * self.itemsize
        self._gather(<char*>self.ops[0].x, <char*>self.target_buffer,
                     <char*>self.weight_buffer, xs, ys, index, start, n)

    # forward, loss, backward and penalties of the n samples listed in index,
    # in `count` shards; returns the batch loss.  The shards run the ops
    # between two that need the whole batch in one parallel region (the
    # first region gathers the rows, the last one also takes the loss and
    # runs backward); the ops that need the whole batch run over all rows in
    # between.  The shards' gradients are then added in a fixed order into
    # shard 0's, which are the layers' gradient arrays; with `step`, each
    # piece of them is also stepped by the optimizer (step_in_pieces) right
    # after it is added up, except those of the ops that need the whole batch.
    cdef double _sharded_gradients(self, const char* xs, const char* ys, const int64_t* index,
                                   Py_ssize_t n, int count, bint step) noexcept nogil:
        cdef int w, workers = max(1, min(self.training_workers, count))
        cdef Py_ssize_t i = 0, j, k
        cdef double loss = 0
        for w in range(count + 1):
            self.shard_start[w] = w * n // count
        self._draw_keys()
        while True:                     # forward, segment [i, j) after segment
            j = i
            while j < self.n_ops and not self.ops[j].whole_batch:
                j += 1
            for w in prange(count, num_threads=workers, schedule="static"):
                if i == 0:
                    self._shard_begin(w, xs, ys, index)
                _forward_ops(self.shard_ops[w], i, j, self._shard_rows(w), True)
                if j == self.n_ops:
                    self.shard_value[w] = self._shard_loss(w, n)
                    _backward_ops(self.shard_ops[w], i, j, self._shard_rows(w))
            if j == self.n_ops:
                break
            self.ops[j].forward(&self.ops[j], n, True)
            i = j + 1
        while i > 0:                    # backward: op i-1 needs the whole batch
            self._backward_one(i - 1, n)
            k = i - 1
            while k > 0 and not self.ops[k - 1].whole_batch:
                k -= 1
            if k < i - 1:
                for w in prange(count, num_threads=workers, schedule="static"):
                    _backward_ops(self.shard_ops[w], k, i - 1, self._shard_rows(w))
            i = k
        for k in prange(self.n_pieces, num_threads=workers, schedule="static"):
            self._add_shard_piece(k, count)
            if step:
                self._step_piece(k)
        for w in range(count):
            loss += self.shard_value[w]
        return loss + self._penalize()

    cdef inline Py_ssize_t _shard_rows(self, int w) noexcept nogil:
        return self.shard_start[w + 1] - self.shard_start[w]

    # shard w's share of the loss of a batch of n samples, and its gradient
    cdef double _shard_loss(self, int w, Py_ssize_t n) noexcept nogil:
        cdef Op* last = &self.shard_ops[w][self.n_ops - 1]
        cdef char* targets = (<char*>self.target_buffer
                              + self.shard_start[w] * self.loss.target_size * self.itemsize)
        return self.shard_loss[w].evaluate(&self.shard_loss[w], self._shard_rows(w), n,
                                           last.y, targets, last.dy)

    # op i's backward over the whole batch; op 0 computes no input gradient
    cdef void _backward_one(self, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
        cdef void* dx = self.ops[i].dx
        if i == 0:
            self.ops[i].dx = NULL
        self.ops[i].backward(&self.ops[i], n)
        self.ops[i].dx = dx

    # piece k of the gradients of shards 0..count-1 added into shard 0's
    # pairwise, ((g0 + g1) + (g2 + g3)) + ...: every element is added in the
    # same order whichever worker adds its piece
    cdef void _add_shard_piece(self, Py_ssize_t k, int count) noexcept nogil:
        cdef const int64_t* piece = self.pieces + 5 * k
        cdef Py_ssize_t i = piece[0], j = piece[1]
        cdef Py_ssize_t offset = piece[2] * self.itemsize
        cdef int w, stride = 1
        while stride < count:
            w = 0
            while w + stride < count:
                _add(<char*>self.shard_ops[w][i].grads[j] + offset,
                     <char*>self.shard_ops[w + stride][i].grads[j] + offset,
                     piece[3], self.itemsize == 4)
                w += 2 * stride
            stride *= 2

    # piece k of the added-up gradients stepped by the optimizer
    cdef inline void _step_piece(self, Py_ssize_t k) noexcept nogil:
        cdef const int64_t* piece = self.pieces + 5 * k
        cdef Op* op = &self.ops[piece[0]]
        self.updater.update(self.updater, piece[4], op.params[piece[1]], op.grads[piece[1]],
                            piece[2], piece[3])

    # every op that draws at random gets a new key for the batch about to run
    cdef void _draw_keys(self) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(self.n_ops):
            if self.ops[i].generator != NULL:
                self.ops[i].key = rng.next_u64(self.ops[i].generator)

    # backward through ops last..first; op `first` computes dx only when asked;
    # ops that fuse plain SGD apply it with rate sgd_lr (when not 0)
    cdef void _backward(self, Py_ssize_t first, Py_ssize_t n, bint input_grad,
                        double sgd_lr) noexcept nogil:
        cdef Py_ssize_t i
        if first >= self.n_ops:     # nothing after a deferred first op
            return
        cdef void* first_dx = self.ops[first].dx
        if not input_grad:
            self.ops[first].dx = NULL
        for i in range(self.n_ops - 1, first - 1, -1):
            self.ops[i].sgd_lr = sgd_lr if self.ops[i].fuses_sgd else 0
            self.ops[i].backward(&self.ops[i], n)
            self.ops[i].sgd_lr = 0
        self.ops[first].dx = first_dx

    # the optimizer step with this learning rate for the parameters of ops
    # first..last, except, when `fused`, those that fused it into backward,
    # and, when `in_pieces`, those a sharded step updated piece by piece
    cdef void _update(self, Py_ssize_t first, double learning_rate, bint fused,
                      bint in_pieces) noexcept nogil:
        cdef Py_ssize_t i, j, slot = 0
        cdef Op* op
        self.updater.learning_rate = learning_rate
        for i in range(self.n_ops):
            op = &self.ops[i]
            if (i >= first and not (fused and op.fuses_sgd)
                    and not (in_pieces and not op.whole_batch)):
                for j in range(op.n_params):
                    self.updater.update(self.updater, slot + j, op.params[j], op.grads[j],
                                        0, op.param_sizes[j])
            slot += op.n_params
        self.updater.step += 1

    def forward(self, x, bint training=False):
        """Output (n, out_size) for x (n, in_size): a view of a plan buffer.
        The plan keeps a copy of x for `backward`."""
        cdef Py_ssize_t n = x.shape[0]
        self.reserve(n)
        np.copyto(self.acts[0][:n], x)
        with nogil:
            gate_enter()
            if training:
                self._draw_keys()
            _forward_ops(self.ops, 0, self.n_ops, n, training)
            gate_leave()
        return self.acts[self.n_ops][:n]

    def backward(self, dy):
        """Gradient w.r.t. the input of the last `forward`, for dy (n, out_size).

        Fills the ops' gradient arrays; returns a view of a plan buffer."""
        cdef Py_ssize_t n = dy.shape[0]
        np.copyto(self.deltas[self.n_ops][:n], dy)
        with nogil:
            gate_enter()
            self._backward(0, n, True, 0.0)
            gate_leave()
        return self.deltas[0][:n]

    def predict(self, x, out, Py_ssize_t chunk=256, int workers=1):
        """out (N, out_size) = network output for x (N, in_size), in chunks of
        at most `chunk` samples read from x and written to `out` in place,
        spread over `workers` threads.  Every chunk is the same whatever the
        number of workers, so the results are too."""
        cdef Py_ssize_t total = x.shape[0]
        chunk = max(1, min(chunk, total))
        cdef Py_ssize_t n_chunks = (total + chunk - 1) // chunk
        cdef int w, count = max(1, min(workers, n_chunks, MAX_WORKERS))
        self.reserve(chunk)
        if count > 1:
            self._reserve_workers(count, chunk)
        cdef char* src = <char*>address(x)
        cdef char* dst = <char*>address(out)
        self.interrupted = 0
        with nogil:
            if count == 1:
                self._predict_chunks(0, 1, src, dst, total, chunk)
            else:
                for w in prange(count, num_threads=count, schedule="static"):
                    self._predict_chunks(w, count, src, dst, total, chunk)
        if self.interrupted:
            error, self.interruption = self.interruption, None
            raise error
        return out

    # worker w of `count` runs chunks w, w + count, ... of src (total rows) into
    # dst, pointing its first op's input and last op's output there meanwhile.
    # Worker 0 (the calling thread) looks for pending signals now and then
    # (signals_due); when a handler raises, every worker stops.
    cdef void _predict_chunks(self, int w, int count, char* src, char* dst, Py_ssize_t total,
                              Py_ssize_t chunk) noexcept nogil:
        cdef Op* ops = self.worker_ops[w]
        cdef Op* first = &ops[0]
        cdef Op* last = &ops[self.n_ops - 1]
        cdef void* own_input = first.x
        cdef void* own_output = last.y
        cdef Py_ssize_t start = w * chunk, n
        cdef double checked = now_seconds()
        while start < total and not flag_get(&self.interrupted):
            n = min(chunk, total - start)
            first.x = src + start * self.in_size * self.itemsize
            last.y = dst + start * self.out_size * self.itemsize
            gate_enter()
            _forward_ops(ops, 0, self.n_ops, n, False)
            gate_leave()
            start += count * chunk
            if w == 0 and start < total and signals_due(checked):
                self._check_signals()
                checked = now_seconds()
        first.x = own_input
        last.y = own_output

    cdef void _check_signals(self) noexcept nogil:
        with gil:
            try:
                PyErr_CheckSignals()        # runs the handlers: Ctrl-C raises here
            except BaseException as error:
                self.interruption = error
                flag_set(&self.interrupted, 1)

    def set_training(self, loss, updater, list params, list penalties=None):
        """Use this loss and optimizer for `train`.  `params` are the
        network's trainable arrays in the optimizer's slot order; they must be
        exactly the parameters the ops declare, in order, so that no
        parameter is left out of the updates.  `penalties` (PenaltyOp objects
        on some of those parameters) add their gradients after backward and
        their values to each step's loss."""
        declared = [<size_t>self.ops[i].params[j] for i in range(self.n_ops)
                    for j in range(self.ops[i].n_params)]
        if [<size_t>address(p) for p in params] != declared:
            raise ValueError(f"the ops declare {len(declared)} parameters that differ from "
                             f"the {len(params)} trainable arrays of the layers")
        updater.check_params(params)
        self.loss_object = loss
        self.updater_object = updater
        memcpy(&self.loss_record, PyCapsule_GetPointer(loss.capsule(), "nncore.Loss"),
               sizeof(Loss))
        self.loss = &self.loss_record
        self.updater = <Updater*>PyCapsule_GetPointer(updater.capsule(), "nncore.Updater")
        penalties = list(penalties or [])
        free(self.penalties)
        self.penalties = <Penalty*>malloc(max(len(penalties), 1) * sizeof(Penalty))
        if self.penalties == NULL:
            raise MemoryError()
        for i, penalty in enumerate(penalties):
            memcpy(&self.penalties[i], PyCapsule_GetPointer(penalty.capsule(), "nncore.Penalty"),
                   sizeof(Penalty))
        self.penalty_objects = penalties
        self.n_penalties = len(penalties)
        self.plain_sgd = getattr(updater, 'fusable', False) and not penalties
        self.step_in_pieces = self.updater.piecewise and not penalties
        if self.capacity:
            self._reserve_targets()

    def _reserve_targets(self):
        self.targets = aligned_empty((self.capacity, self.loss.target_size), self.dtype)
        self.target_buffer = address(self.targets)
        self.weights = aligned_empty((self.capacity,), self.dtype)
        self.weight_buffer = address(self.weights)

    def train(self, x, y, int64_t[::1] order, Py_ssize_t batch_size,
              Py_ssize_t first_step, const double[::1] learning_rates,
              uint64_t[::1] shuffle_state=None, weights=None):
        """Run len(learning_rates) steps on x (N, in_size), y (N, target_size)
        and, when given, per-sample loss weights (N);
        step s takes the samples order[k*batch_size:][:batch_size], k = s %
        ceil(N / batch_size).  At k == 0 an epoch starts and, given a
        shuffle_state, `order` is refilled with a permutation of 0..N-1 (see
        nncore._native.data.shuffle).  Returns each step's batch loss."""
        if self.loss == NULL:
            raise RuntimeError("call set_training before train")
        self.reserve(batch_size)
        self._reserve_batch_shards(batch_size)
        cdef Py_ssize_t steps = learning_rates.shape[0], total = order.shape[0]
        cdef Py_ssize_t per_epoch = (total + batch_size - 1) // batch_size
        cdef Py_ssize_t s = 0, k, count
        cdef const char* xs = <char*>address(x)
        cdef const char* ys = <char*>address(y)
        cdef uint64_t* state = &shuffle_state[0] if shuffle_state is not None else NULL
        cdef bint deferred = self.step_alignment(batch_size) > 1
        if deferred and self.window is None:
            self.window = WindowBuffers(self, self.ops[0].window.size)
        self.last_deferred = deferred
        self.weight_source = <const char*>address(weights) if weights is not None else NULL
        self.loss.weights = NULL
        losses = np.empty(steps, np.float64)
        cdef double[::1] step_losses = losses
        with nogil:
            while s < steps:
                k = (first_step + s) % per_epoch
                if k == 0 and state != NULL:
                    rng.new_order(&order[0], total, state)
                gate_enter()
                if deferred:
                    count = min(WINDOW - k % WINDOW, steps - s, per_epoch - k)
                    self._deferred_steps(xs, ys, &order[k], count, &learning_rates[s],
                                         &step_losses[s])
                else:
                    count = 1
                    step_losses[s] = self._step(xs, ys, &order[k * batch_size],
                                                min(batch_size, total - k * batch_size),
                                                learning_rates[s])
                gate_leave()
                s += count
        return losses

    def step_alignment(self, Py_ssize_t batch_size):
        """WINDOW when `train` defers the first op's updates (per-sample plain
        SGD, windows aligned to the epoch), else 1: calls that start and end
        at multiples of it give results independent of how steps are split."""
        if self.plain_sgd and batch_size == 1 and self.ops[0].window != NULL:
            return WINDOW
        return 1

    def last_batch(self, Py_ssize_t n):
        """(outputs (n, out_size), targets (n, target_size)) of a `train` call
        that ran one step of n samples: views of plan buffers."""
        targets = self.window.targets if self.last_deferred else self.targets
        return self.acts[self.n_ops][:n], targets[:n]

    def gradients(self, x, y, weights=None, const int64_t[::1] draw_ids=None):
        """Fill the ops' gradient arrays with the gradient of the loss (and
        penalties) of the batch x (n, in_size), y (n, target_size), with
        per-sample loss weights (n) when given, as a training step computes
        it, without updating anything.  Sample r draws its random numbers
        (dropout, augmentation) for index draw_ids[r] when given (n), else r,
        so rows of a larger batch can be run apart with that batch's draws.
        Returns the batch loss."""
        if self.loss == NULL:
            raise RuntimeError("call set_training before gradients")
        cdef Py_ssize_t n = x.shape[0], i
        if draw_ids is not None and draw_ids.shape[0] != n:
            raise ValueError(f"draw_ids has {draw_ids.shape[0]} indices for {n} samples")
        self.reserve(n)
        self._reserve_batch_shards(n)
        index = np.arange(n, dtype=np.int64)
        cdef const int64_t* rows = <const int64_t*>address(index)
        cdef const char* xs = <char*>address(x)
        cdef const char* ys = <char*>address(y)
        cdef double loss
        cdef const int64_t* ids = &draw_ids[0] if draw_ids is not None and n else NULL
        self.last_deferred = False
        self.weight_source = <const char*>address(weights) if weights is not None else NULL
        self.loss.weights = NULL
        for i in range(self.n_ops):
            self.ops[i].draw_ids = ids
        try:
            with nogil:
                gate_enter()
                loss = self._gradients(xs, ys, rows, n, False, 0.0)
                gate_leave()
        finally:
            for i in range(self.n_ops):
                self.ops[i].draw_ids = NULL
        return loss

    # one training step on the n samples listed in index; returns the batch loss
    cdef double _step(self, const char* xs, const char* ys, const int64_t* index,
                      Py_ssize_t n, double learning_rate) noexcept nogil:
        cdef bint sharded = self._shard_count(n) > 1
        cdef bint fused = self.plain_sgd and not sharded
        cdef bint in_pieces = self.step_in_pieces and sharded
        self.updater.learning_rate = learning_rate
        cdef double loss = self._gradients(xs, ys, index, n, in_pieces,
                                           learning_rate if fused else 0.0)
        self._update(0, learning_rate, fused, in_pieces)
        return loss

    # forward, loss, backward and penalties on the n samples listed in index
    # (ops that fuse plain SGD apply it with rate sgd_lr when not 0, which
    # only a batch of one shard asks for; a batch of several shards steps the
    # pieces of its gradients as they are added up when `step_pieces`); the
    # batch loss
    cdef double _gradients(self, const char* xs, const char* ys, const int64_t* index,
                           Py_ssize_t n, bint step_pieces, double sgd_lr) noexcept nogil:
        cdef Op* last = &self.ops[self.n_ops - 1]
        cdef double loss
        cdef int count = self._shard_count(n)
        if count > 1:
            return self._sharded_gradients(xs, ys, index, n, count, step_pieces)
        self._draw_keys()
        self._gather(<char*>self.ops[0].x, <char*>self.target_buffer,
                     <char*>self.weight_buffer, xs, ys, index, 0, n)
        self.loss.weights = self.weight_buffer if self.weight_source != NULL else NULL
        _forward_ops(self.ops, 0, self.n_ops, n, True)
        loss = self.loss.evaluate(self.loss, n, n, last.y, self.target_buffer, last.dy)
        self._backward(0, n, False, sgd_lr)
        return loss + self._penalize()

    # add the penalties' gradients to their parameters' gradients; their total
    cdef double _penalize(self) noexcept nogil:
        cdef Py_ssize_t i
        cdef double total = 0
        for i in range(self.n_penalties):
            total += self.penalties[i].apply(&self.penalties[i], self.penalties[i].grad)
        return total

    # copy the samples listed in index[start..start+n-1] into rows start.. of
    # inputs and targets, and their weights (when `train` has any) into weights
    cdef void _gather(self, char* inputs, char* targets, char* weights, const char* xs,
                      const char* ys, const int64_t* index, Py_ssize_t start,
                      Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t r
        cdef Py_ssize_t in_bytes = self.in_size * self.itemsize
        cdef Py_ssize_t target_bytes = self.loss.target_size * self.itemsize
        for r in range(start, start + n):
            memcpy(inputs + r * in_bytes, xs + index[r] * in_bytes, in_bytes)
            memcpy(targets + r * target_bytes, ys + index[r] * target_bytes, target_bytes)
        if self.weight_source != NULL:
            for r in range(start, start + n):
                memcpy(weights + r * self.itemsize,
                       self.weight_source + index[r] * self.itemsize, self.itemsize)

    # Per-sample plain SGD over `count` samples, with the first op's update
    # deferred to the end of the window (see core.pxd: SampleWindow).
    cdef void _deferred_steps(self, const char* xs, const char* ys, const int64_t* index,
                              Py_ssize_t count, const double* rates,
                              double* losses) noexcept nogil:
        cdef Py_ssize_t t
        cdef Op* first = &self.ops[0]
        cdef Op* last = &self.ops[self.n_ops - 1]
        cdef const SampleWindow* window = first.window
        cdef void* scratch = self.window.scratch_ptr
        cdef void* inputs = self.window.inputs_ptr
        cdef char* targets = self.window.targets_ptr
        cdef Py_ssize_t target_bytes = self.loss.target_size * self.itemsize
        cdef char* weights = self.window.weights_ptr
        self._gather(<char*>inputs, targets, weights, xs, ys, index, 0, count)
        window.begin(first, scratch, inputs, count)
        for t in range(count):
            window.output(first, scratch, t, rates)
            self._draw_keys()
            _forward_ops(self.ops, 1, self.n_ops, 1, True)
            if self.weight_source != NULL:
                self.loss.weights = weights + t * self.itemsize
            losses[t] = self.loss.evaluate(self.loss, 1, 1, last.y, targets + t * target_bytes,
                                           last.dy)
            self._backward(1, 1, True, rates[t])
            self._update(1, rates[t], True, False)
        window.end(first, scratch, inputs, rates, count)


# The buffers of a deferred first-op update (per-sample plain SGD): a window's
# inputs, targets and weights, and the op's scratch of `scratch_size` values.
cdef class WindowBuffers:
    cdef object inputs, targets, weights, scratch
    cdef void* inputs_ptr
    cdef char* targets_ptr
    cdef char* weights_ptr
    cdef void* scratch_ptr

    def __cinit__(self, Plan plan, Py_ssize_t scratch_size):
        self.inputs = aligned_empty((WINDOW, plan.in_size), plan.dtype)
        self.targets = aligned_empty((WINDOW, max(plan.loss.target_size, 1)), plan.dtype)
        self.weights = aligned_empty((WINDOW,), plan.dtype)
        self.scratch = aligned_empty((scratch_size,), plan.dtype)
        self.inputs_ptr = address(self.inputs)
        self.targets_ptr = <char*>address(self.targets)
        self.weights_ptr = <char*>address(self.weights)
        self.scratch_ptr = address(self.scratch)


def fork_prepare(double timeout):
    """Before a fork: stop native sections from starting and wait (without
    the GIL) until the running ones have ended.  True when they all ended
    within `timeout` seconds."""
    cdef int done
    with nogil:
        done = gate_close(timeout)
    return bool(done)


def fork_parent():
    """After a fork, in the parent: let native sections run again."""
    flag_set(&gate_closed, 0)


def fork_child():
    """After a fork, in the child: forget the parent's threads at the gate."""
    flag_set(&gate_busy, 0)
    flag_set(&gate_closed, 0)
