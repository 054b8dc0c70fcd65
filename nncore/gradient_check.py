"""`check_gradients`: compare a network's or a layer's analytic gradients
with central finite differences (in float64), for people writing their own
layers, losses or regularizers."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from .layers.base import Layer


def _relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(analytic), initial=0)),
                float(np.max(np.abs(numeric), initial=0)), 1e-12)
    return float(np.max(np.abs(analytic - numeric), initial=0)) / scale


def _entries(size: int, max_entries: Optional[int], rng) -> np.ndarray:
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, max_entries, replace=False))


def _numeric(objective, array: np.ndarray, entries: np.ndarray, h: float) -> np.ndarray:
    """Central differences of objective() w.r.t. array.flat[entries]
    (the array is changed in place and restored)."""
    flat = array.reshape(-1)
    out = np.empty(len(entries))
    for k, i in enumerate(entries):
        old = flat[i]
        flat[i] = old + h
        up = objective()
        flat[i] = old - h
        down = objective()
        flat[i] = old
        out[k] = (up - down) / (2 * h)
    return out


def check_gradients(network_or_layer, x, y=None, sample_weight=None, *,
                    max_entries: Optional[int] = 100, h: float = 1e-6,
                    seed: int = 0) -> Dict[str, float]:
    """The worst relative error between analytic and finite-difference
    gradients, per parameter:
    ``{name: max(abs(analytic - numeric)) / max(abs(analytic), abs(numeric))}``.
    Values around 1e-7 or below mean the gradients are right;
    1e-3 or above, that a backward is wrong.

    For a Network (float64, with a loss set by `use`), the objective is the
    loss of (x, y) plus the regularizer penalties; the analytic gradients come
    from `network.gradients(x, y, sample_weight)`; keys are
    'layers[i].params[j]'.  For a Layer (built or not; float64), the objective
    is sum(layer.forward(x) * y), y an array shaped like the output (drawn
    from `seed` when None), whose gradients come from `layer.backward(y)`;
    keys are 'params[j]' and 'input'.

    Each parameter is checked at `max_entries` randomly chosen entries (None:
    all of them), with central differences of step h.  The objective is
    computed in inference mode and the analytic gradients in training mode,
    so layers that differ between the two (Dropout, BatchNormalization,
    augmentation) cannot be checked this way.

    Parameters
    ----------
    network_or_layer : Network or Layer
        What to check, in float64.
    x : ndarray
        A batch of inputs.
    y : ndarray, optional
        The targets (a network: required; a layer: the output weights).
    sample_weight : ndarray, optional
        Per-sample weights of the network's loss.
    max_entries : int or None, default 100
        How many entries of each parameter to check (None: all).
    h : float, default 1e-6
        The step of the central differences.
    seed : int, default 0
        Seeds the choice of entries and a layer's drawn y.

    Returns
    -------
    dict of str to float
        The worst relative error of each parameter (and, for a layer, of
        the input gradient).

    Raises
    ------
    TypeError
        If given something other than a Network or a Layer.
    ValueError
        If the network is not float64, or has no targets.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Dense(3, activation="tanh", kernel_regularizer="l2"),
    ...                       nncore.Dense(1)], input_shape=(2,), dtype="float64", seed=0)
    >>> net.use("mse")
    Network(...)
    >>> rng = np.random.default_rng(0)
    >>> errors = nncore.check_gradients(net, rng.normal(size=(8, 2)), rng.normal(size=(8, 1)))
    >>> sorted(errors)
    ['layers[0].params[0]', 'layers[0].params[1]', 'layers[1].params[0]', 'layers[1].params[1]']
    >>> max(errors.values()) < 1e-6
    True
    """
    rng = np.random.default_rng(seed)
    if isinstance(network_or_layer, Layer):
        return _check_layer(network_or_layer, x, y, max_entries, h, rng)
    from .network import Network
    if not isinstance(network_or_layer, Network):
        raise TypeError(f"check_gradients takes a nncore Network or Layer, got "
                        f"{type(network_or_layer).__name__}")
    return _check_network(network_or_layer, x, y, sample_weight, max_entries, h, rng)


def _check_network(net, x, y, sample_weight, max_entries, h, rng) -> Dict[str, float]:
    if net.dtype != np.float64:
        raise ValueError(f"check_gradients: the network is {net.dtype}; finite differences "
                         f"need Network(..., dtype='float64')")
    if y is None:
        raise ValueError("check_gradients: a network needs targets y")
    analytic = net.gradients(x, y, sample_weight)
    x = np.asarray(x, np.float64)

    def objective():
        return net.evaluate(x, y, batch_size=len(x), sample_weight=sample_weight)["loss"]

    errors = {}
    index = 0
    # the weights are nudged in place: other threads must not read them meanwhile
    with net.guard.writing("check_gradients"):
        for i, layer in enumerate(net.layers):
            for j, param in enumerate(layer.params):
                entries = _entries(param.size, max_entries, rng)
                numeric = _numeric(objective, param, entries, h)
                errors[f"layers[{i}].params[{j}]"] = _relative_error(
                    analytic[index].reshape(-1)[entries], numeric)
                index += 1
    return errors


def _check_layer(layer, x, y, max_entries, h, rng) -> Dict[str, float]:
    name = type(layer).__name__
    x = np.array(x, dtype=np.float64, copy=True)
    if not layer.built:
        layer.dtype = np.dtype(np.float64)
        layer.build(x.shape[1:])
    if layer.dtype != np.float64 or any(p.dtype != np.float64 for p in layer.params):
        raise ValueError(f"check_gradients: {name} is {layer.dtype}; finite differences "
                         f"need float64 (build it in a float64 network, or pass it unbuilt)")
    out = np.asarray(layer.forward(x, training=True))
    if y is None:
        y = rng.normal(size=out.shape)
    y = np.asarray(y, np.float64)
    if y.shape != out.shape:
        raise ValueError(f"check_gradients: y must have the layer's output shape "
                         f"{out.shape}, got {y.shape}")
    dx = np.array(layer.backward(y), np.float64)
    analytic = [np.array(g, np.float64) for g in layer.grads]

    def objective():
        return float(np.sum(np.asarray(layer.forward(x, training=False)) * y))

    errors = {}
    for j, param in enumerate(layer.params):
        entries = _entries(param.size, max_entries, rng)
        errors[f"params[{j}]"] = _relative_error(analytic[j].reshape(-1)[entries],
                                                 _numeric(objective, param, entries, h))
    entries = _entries(x.size, max_entries, rng)
    errors["input"] = _relative_error(dx.reshape(-1)[entries],
                                      _numeric(objective, x, entries, h))
    return errors
