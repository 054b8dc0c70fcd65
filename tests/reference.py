"""NumPy reference implementations and a finite-difference gradient checker."""
import numpy as np


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS = {
    "identity": (lambda x, a: x, lambda x, a: np.ones_like(x)),
    "tanh": (lambda x, a: np.tanh(x), lambda x, a: 1 - np.tanh(x) ** 2),
    "sigmoid": (lambda x, a: 1 / (1 + np.exp(-x)),
                lambda x, a: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    "relu": (lambda x, a: np.maximum(x, 0), lambda x, a: (x > 0).astype(x.dtype)),
    "leaky_relu": (lambda x, a: np.where(x > 0, x, a * x),
                   lambda x, a: np.where(x > 0, 1.0, a).astype(x.dtype)),
}

EPS = 1e-7


def loss_reference(kind, pred, target, from_logits=False, weights=None):
    """Mean loss over the batch, as Keras defines it (float64); with per-sample
    weights (n,), every element or row of sample i counts weights[i] times:
    sum_i w_i loss_i / n."""
    p = pred.astype(np.float64)
    t = target.astype(np.float64)
    if kind == "mse":
        terms = (p - t) ** 2
    elif kind == "binary_crossentropy":
        if from_logits:
            terms = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
        else:
            pc = np.clip(p, EPS, 1 - EPS)
            terms = -(t * np.log(pc) + (1 - t) * np.log(1 - pc))
    elif kind in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        if kind.startswith("sparse"):
            t = np.eye(p.shape[-1])[t.astype(int).reshape(p.shape[:-1])]
        if from_logits:
            logp = p - p.max(-1, keepdims=True)
            logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
        else:
            logp = np.log(np.clip(p, EPS, 1 - EPS))
        terms = -(t * logp).sum(-1)
    else:
        raise ValueError(kind)
    if weights is not None:
        terms = terms * np.asarray(weights, np.float64).reshape((-1,) + (1,) * (terms.ndim - 1))
    return np.mean(terms)


def numeric_gradient(f, array, h=1e-6):
    """Central differences of the scalar f() w.r.t. every element of array
    (modified in place and restored)."""
    grad = np.zeros_like(array, dtype=np.float64)
    flat = array.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f()
        flat[i] = old - h
        down = f()
        flat[i] = old
        grad.reshape(-1)[i] = (up - down) / (2 * h)
    return grad


def relative_error(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-12)
