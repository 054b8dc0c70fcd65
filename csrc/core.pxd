# Shared declarations of the native core: the dtype-generic scalar type, the
# op / loss / updater records that the plan executor drives, and tiny inline
# math helpers.  This file declares no Python-visible objects, so cimporting
# it creates no run-time import.
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_ANY_CONTIGUOUS
from libc.stdint cimport uint64_t, int64_t
from libc.math cimport tanh, tanhf, exp, expf, log, logf, log1p, log1pf, fabs, fabsf

ctypedef fused real:
    float
    double

cdef enum DType:
    F32 = 0
    F64 = 1


cdef enum:
    MAX_OP_PARAMS = 6    # most (parameter, gradient) pairs one op declares
    WINDOW = 64          # samples per window of a deferred per-sample update


cdef struct SampleWindow   # below: the deferred per-sample SGD of an op


# One layer of the native core, in two parts with two owners.
#
# Set once by the op object that the Python layer creates, read-only after
# that (no kernel writes them): the sizes, `cfg` (pointers to the layer's
# weights and gradient arrays, hyper-parameters), the function pointers and
# the (param, grad) pairs the op declares.
#
# Set by the plan that runs the op, in its own copy of this record: every
# buffer pointer.  Buffers are batch-first and contiguous:
#   x, dx: (n, in_size)   y, dy: (n, out_size)
#   cache: (n, cache_size) per-sample values kept from forward to backward
#   state: (state_size) float64 values kept from forward to backward
#          (batch statistics, flags)
#   keep:  (keep_size) values of the op's dtype that persist from run to run
#          of the plan: caches derived from the weights (convpool's Winograd
#          kernel), which the op checks against the weights before use
#   work:  (n, work_size) scratch shared by all ops of a plan; an op that works
#          through its samples in groups sets work_group (> 0) and needs
#          (work_group, work_size) only, whatever n (convolutions: groups of
#          work_group samples in training, larger ones at inference that fit
#          the same scratch)
#   key, first, draw_ids: the random draws of a training forward.  An op
#          that draws declares its generator (4 uint64 words the layer owns);
#          the plan draws `key` from it once per training batch, and sample r
#          of the n this record runs draws from rng.sample_state(key,
#          draw_index(op, r)): first + r, `first` being the index in the batch
#          of its first sample, or draw_ids[first + r] when the plan was
#          given the indices the batch's samples draw for (draw_ids, else
#          NULL); so a sample draws the same whichever shard runs it
#   index: the record's position in the plan's array of records, the same
#          in every copy of the array (per worker, per shard), so that
#          op - op.index is the first record of the array this one runs in
# Two plans never share these, so they may run the same op at once.
#
# A plan may run a training batch in shards, one op record per shard, whose
# x, y, dx, dy and cache point into the rows of the shard and whose grads
# point at the shard's own gradient arrays; it then adds the shards'
# gradients.  An op whose training forward needs the whole batch at once
# (batch statistics) sets `whole_batch`: the plan runs it over all rows.
cdef struct Op:
    int dtype
    Py_ssize_t in_size
    Py_ssize_t out_size
    Py_ssize_t cache_size
    Py_ssize_t state_size
    Py_ssize_t keep_size
    Py_ssize_t work_size
    Py_ssize_t work_group
    const void* cfg
    # trainable parameters and their gradient arrays, in the network's order
    int n_params
    void* params[MAX_OP_PARAMS]
    void* grads[MAX_OP_PARAMS]
    Py_ssize_t param_sizes[MAX_OP_PARAMS]
    # the op applies a plain SGD step itself during backward when sgd_lr != 0
    # (the plan sets sgd_lr only on such ops; every other op's parameters
    # are updated by the plan's updater after backward)
    bint fuses_sgd
    double sgd_lr
    bint whole_batch
    uint64_t* generator     # NULL when the op draws nothing
    uint64_t key
    Py_ssize_t first
    const int64_t* draw_ids
    Py_ssize_t index
    void* x
    void* y
    void* dx          # NULL when the gradient w.r.t. the input is not needed
    void* dy
    void* cache
    double* state
    void* keep
    void* work
    void (*forward)(Op* op, Py_ssize_t n, bint training) noexcept nogil
    void (*backward)(Op* op, Py_ssize_t n) noexcept nogil
    const SampleWindow* window     # NULL when the op cannot defer per-sample SGD


# Deferred per-sample SGD of an op over a window of K <= WINDOW samples
# X (K, in_size), in a scratch of `size` values that the plan owns: `begin`
# prepares the window, `output(t)` writes the output of sample t into op.y as
# if the updates of samples 0..t-1 (learning rates rates[0..t-1], their
# output gradients read from op.dy after each step) had been applied, and
# `end` applies all K updates at once.
cdef struct SampleWindow:
    Py_ssize_t size
    void (*begin)(Op* op, void* scratch, const void* X, Py_ssize_t K) noexcept nogil
    void (*output)(Op* op, void* scratch, Py_ssize_t t, const double* rates) noexcept nogil
    void (*end)(Op* op, void* scratch, const void* X, const double* rates,
                Py_ssize_t K) noexcept nogil


# A loss over n samples of a batch of `batch` samples (n == batch, or the n
# are one shard of the batch): returns the samples' share of the batch's mean
# loss (their sum divided by the batch's count) and, when dpred is not NULL,
# writes the gradient of the batch's mean w.r.t. their predictions.
#   pred, dpred: (n, size)   target: (n, target_size)   weights: (n) or NULL
# With weights, sample i's loss counts weights[i] times in the mean over the
# batch (Keras: sum_i w_i loss_i / batch).  Whoever runs the loss (a Plan on
# its own copy of this record) points `weights` at its batch's weights.
cdef struct Loss:
    int dtype
    Py_ssize_t size
    Py_ssize_t target_size
    Py_ssize_t width          # class axis length (last axis of pred)
    void* cfg
    const void* weights
    double (*evaluate)(Loss* loss, Py_ssize_t n, Py_ssize_t batch, const void* pred,
                       const void* target, void* dpred) noexcept nogil


# An optimizer step applied to one parameter array at a time, or to a range
# of its elements: `update` steps elements start..start+size-1 of the
# parameter `param` (its first element's address) from `grad` (likewise).
# `slot` indexes the parameter (for optimizers that keep per-parameter state).
# Callers pass a whole array (start 0) unless `piecewise` says that every
# element's step depends on that element alone (no norm clipping), in which
# case disjoint ranges may be stepped in any order, on any thread.
# `step` counts completed steps; whoever runs a step (a plan, or
# `apply_update` on the Python path) increments it after the step, and
# nothing else writes it except loading a saved optimizer.
cdef struct Updater:
    int dtype
    void* cfg
    double learning_rate
    long step                 # number of completed steps before this one
    bint piecewise
    void (*update)(Updater* u, Py_ssize_t slot, void* param, const void* grad,
                   Py_ssize_t start, Py_ssize_t size) noexcept nogil


# A weight penalty l1 * sum|w| + l2 * sum w^2 on one parameter array, applied
# by whoever trains (a Plan, or the Python loop) after backward: `apply` adds
# its gradient to `grad` (when not NULL) and returns its value.
#   param, grad: (size)
cdef struct Penalty:
    int dtype
    double l1
    double l2
    const void* param
    void* grad
    Py_ssize_t size
    double (*apply)(const Penalty* p, void* grad) noexcept nogil


cdef extern from *:
    """
    #define NNCORE_MAX(a, b) ((a) > (b) ? (a) : (b))
    #define NNCORE_SELECT(c, a, b) ((c) ? (a) : (b))
    """
    float max_f "NNCORE_MAX"(float a, float b) noexcept nogil
    double max_d "NNCORE_MAX"(double a, double b) noexcept nogil
    float select_f "NNCORE_SELECT"(bint c, float a, float b) noexcept nogil
    double select_d "NNCORE_SELECT"(bint c, double a, double b) noexcept nogil


# the larger of a and b as one C expression (no branch: loops using it vectorize)
cdef inline real r_max(real a, real b) noexcept nogil:
    if real is float:
        return max_f(a, b)
    else:
        return max_d(a, b)


# c ? a : b as one C expression
cdef inline real r_select(bint c, real a, real b) noexcept nogil:
    if real is float:
        return select_f(c, a, b)
    else:
        return select_d(c, a, b)


cdef inline real r_tanh(real v) noexcept nogil:
    if real is float:
        return tanhf(v)
    else:
        return tanh(v)

cdef inline real r_exp(real v) noexcept nogil:
    if real is float:
        return expf(v)
    else:
        return exp(v)

cdef inline real r_log(real v) noexcept nogil:
    if real is float:
        return logf(v)
    else:
        return log(v)

cdef inline real r_log1p(real v) noexcept nogil:
    if real is float:
        return log1pf(v)
    else:
        return log1p(v)

cdef inline real r_abs(real v) noexcept nogil:
    if real is float:
        return fabsf(v)
    else:
        return fabs(v)


# Declare the (param, grad) pairs of an op, skipping pairs whose param is
# None; the arrays are C-contiguous and of the op's dtype (the layer checks).
cdef inline int declare_params(Op* op, pairs) except -1:
    for param, grad in pairs:
        if param is None:
            continue
        if op.n_params == MAX_OP_PARAMS:
            raise ValueError(f"an op declares at most {MAX_OP_PARAMS} parameters")
        op.params[op.n_params] = address(param)
        op.grads[op.n_params] = address(grad)
        op.param_sizes[op.n_params] = param.size
        op.n_params += 1
    return 0


# Address of the first element of a contiguous array (validated by the caller),
# through the buffer protocol: a few hundred nanoseconds, no allocation.
cdef inline void* address(object array) except? NULL:
    cdef Py_buffer view
    cdef void* pointer
    PyObject_GetBuffer(array, &view, PyBUF_ANY_CONTIGUOUS)
    pointer = view.buf
    PyBuffer_Release(&view)
    return pointer

# F32 / F64 for a float32 / float64 array or numpy dtype
cdef inline int dtype_code(object array_or_dtype) except -1:
    dtype = getattr(array_or_dtype, 'dtype', array_or_dtype)
    kind = dtype.str[1:]
    if kind == 'f4':
        return F32
    if kind == 'f8':
        return F64
    raise TypeError(f"native kernels take float32 or float64, not {dtype}")


# The index sample r of an op record's rows draws its random numbers for
# (see Op: key, first, draw_ids).
cdef inline Py_ssize_t draw_index(const Op* op, Py_ssize_t r) noexcept nogil:
    return op.draw_ids[op.first + r] if op.draw_ids != NULL else op.first + r
