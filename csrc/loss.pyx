# Loss value and gradient kernels.  Each takes n samples of a batch of
# `batch` samples (all of it, or one shard), returns their sum of losses
# divided by the batch's count and, when dpred is not NULL, writes the
# gradient of the batch's mean w.r.t. their predictions; with per-sample
# weights w the mean is sum_i w_i loss_i / batch (as Keras).
from libc.string cimport memcpy
from cpython.pycapsule cimport PyCapsule_New, PyCapsule_GetPointer
from core cimport real, Loss, F32, r_exp, r_log, r_log1p, r_abs, address, dtype_code

cdef enum LossKind:
    MSE = 0
    BINARY_CROSSENTROPY = 1
    BINARY_CROSSENTROPY_LOGITS = 2
    CATEGORICAL_CROSSENTROPY = 3
    SOFTMAX_CROSSENTROPY = 4      # categorical cross-entropy from logits

KINDS = {'mse': MSE, 'binary_crossentropy': BINARY_CROSSENTROPY,
         'binary_crossentropy_logits': BINARY_CROSSENTROPY_LOGITS,
         'categorical_crossentropy': CATEGORICAL_CROSSENTROPY,
         'softmax_crossentropy': SOFTMAX_CROSSENTROPY}

# probabilities are clipped to [EPSILON, 1 - EPSILON] before taking logs, as in Keras
cdef double EPSILON = 1e-7


cdef inline real _clip(real p) noexcept nogil:
    if p < EPSILON:
        return <real>EPSILON
    if p > 1 - EPSILON:
        return <real>(1 - EPSILON)
    return p


# weight of sample s: weights[s], or 1 without weights
cdef inline double _weight(const real* weights, Py_ssize_t s) noexcept nogil:
    return 1.0 if weights == NULL else <double>weights[s]


# mean(w (pred - target)^2) over n samples of per elements; dpred (n, per)
cdef double mse_loss(real* dpred, const real* pred, const real* target,
                     const real* weights, Py_ssize_t n, Py_ssize_t batch,
                     Py_ssize_t per) noexcept nogil:
    cdef Py_ssize_t s, i, count = batch * per
    cdef double total = 0, diff, w
    for s in range(n):
        w = _weight(weights, s)
        for i in range(s * per, (s + 1) * per):
            diff = <double>pred[i] - target[i]
            total += w * (diff * diff)
            if dpred != NULL:
                dpred[i] = <real>(2 * diff * w / count)
    return total / count


# -mean(w (t log p + (1 - t) log(1 - p))) over n samples of per probabilities p
cdef double binary_crossentropy_loss(real* dpred, const real* pred, const real* target,
                                     const real* weights, Py_ssize_t n, Py_ssize_t batch,
                                     Py_ssize_t per) noexcept nogil:
    cdef Py_ssize_t s, i, count = batch * per
    cdef double total = 0, w
    cdef real p, t
    for s in range(n):
        w = _weight(weights, s)
        for i in range(s * per, (s + 1) * per):
            p = _clip(pred[i])
            t = target[i]
            total -= w * (t * r_log(p) + (1 - t) * r_log(1 - p))
            if dpred != NULL:
                dpred[i] = <real>((-(t / p) + (1 - t) / (1 - p)) * w / count)
    return total / count


# the same from logits z: mean(w (max(z, 0) - z t + log(1 + exp(-|z|))))
cdef double binary_crossentropy_logits_loss(real* dpred, const real* pred,
                                            const real* target, const real* weights,
                                            Py_ssize_t n, Py_ssize_t batch,
                                            Py_ssize_t per) noexcept nogil:
    cdef Py_ssize_t s, i, count = batch * per
    cdef double total = 0, w
    cdef real z, t, e
    for s in range(n):
        w = _weight(weights, s)
        for i in range(s * per, (s + 1) * per):
            z = pred[i]
            t = target[i]
            e = r_exp(-r_abs(z))
            total += w * ((z if z > 0 else 0) - z * t + r_log1p(e))
            if dpred != NULL:
                # sigmoid(z) - t, written stably for either sign of z
                dpred[i] = <real>(((1 / (1 + e) if z >= 0 else e / (1 + e)) - t) * w / count)
    return total / count


# rows (n * rows_per_sample, width) of probabilities (or logits when
# from_logits) of a batch of batch_rows rows; targets are one-hot rows
# (rows, width) or, when sparse, one class index per row (rows); every row of
# sample s has weight weights[s]
cdef double categorical_crossentropy_loss(real* dpred, const real* pred,
                                          const real* target, const real* weights,
                                          Py_ssize_t rows, Py_ssize_t batch_rows,
                                          Py_ssize_t rows_per_sample,
                                          Py_ssize_t width, bint sparse,
                                          bint from_logits) noexcept nogil:
    cdef Py_ssize_t r, k, label = 0
    cdef const real* z
    cdef real* g
    cdef real top, t
    cdef double total = 0, lse = 0, t_sum, denom, w, row_total
    for r in range(rows):
        z = pred + r * width
        g = dpred + r * width if dpred != NULL else NULL
        w = _weight(weights, r // rows_per_sample)
        if sparse:
            label = <Py_ssize_t>target[r]
        if from_logits:
            top = z[0]
            for k in range(1, width):
                if z[k] > top:
                    top = z[k]
            denom = 0
            for k in range(width):
                denom += r_exp(z[k] - top)
            lse = top + r_log(<real>denom)
        t_sum = 0
        row_total = 0
        for k in range(width):
            t = (k == label) if sparse else target[r * width + k]
            t_sum += t
            if t != 0:
                if from_logits:
                    row_total += t * (lse - z[k])
                else:
                    row_total -= t * r_log(_clip(z[k]))
        total += w * row_total
        if g != NULL:
            for k in range(width):
                t = (k == label) if sparse else target[r * width + k]
                if from_logits:
                    g[k] = <real>((r_exp(z[k] - lse) * t_sum - t) * w / batch_rows)
                else:
                    g[k] = <real>(-t / _clip(z[k]) * w / batch_rows)
    return total / batch_rows


cdef struct LossCfg:
    int kind
    bint sparse


cdef double _evaluate(Loss* loss, Py_ssize_t n, Py_ssize_t batch, const real* pred,
                      const real* target, real* dpred) noexcept nogil:
    cdef LossCfg* c = <LossCfg*>loss.cfg
    cdef const real* weights = <const real*>loss.weights
    if c.kind == MSE:
        return mse_loss(dpred, pred, target, weights, n, batch, loss.size)
    if c.kind == BINARY_CROSSENTROPY:
        return binary_crossentropy_loss(dpred, pred, target, weights, n, batch, loss.size)
    if c.kind == BINARY_CROSSENTROPY_LOGITS:
        return binary_crossentropy_logits_loss(dpred, pred, target, weights, n, batch,
                                               loss.size)
    return categorical_crossentropy_loss(dpred, pred, target, weights,
                                         n * (loss.size // loss.width),
                                         batch * (loss.size // loss.width),
                                         loss.size // loss.width, loss.width, c.sparse,
                                         c.kind == SOFTMAX_CROSSENTROPY)


cdef double loss_evaluate(Loss* loss, Py_ssize_t n, Py_ssize_t batch, const void* pred,
                          const void* target, void* dpred) noexcept nogil:
    if loss.dtype == F32:
        return _evaluate(loss, n, batch, <const float*>pred, <const float*>target,
                         <float*>dpred)
    return _evaluate(loss, n, batch, <const double*>pred, <const double*>target,
                     <double*>dpred)


cdef class LossOp:
    """Native loss over predictions of `size` elements per sample.

    `width` is the class axis (last axis) for the categorical losses; with
    `sparse` the targets hold one class index per row of `width` predictions.
    """
    cdef Loss loss
    cdef LossCfg cfg

    def __cinit__(self, str kind, dtype, Py_ssize_t size, Py_ssize_t width,
                  bint sparse=False):
        self.cfg.kind = KINDS[kind]
        self.cfg.sparse = sparse
        self.loss.dtype = dtype_code(dtype)
        self.loss.size = size
        self.loss.width = width
        self.loss.target_size = size // width if sparse else size
        self.loss.cfg = &self.cfg
        self.loss.weights = NULL
        self.loss.evaluate = loss_evaluate

    def capsule(self):
        return PyCapsule_New(&self.loss, "nncore.Loss", NULL)


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
        value = c.evaluate(&c, n, n, p, t, g)
    return value
