"""Building blocks of hand-written training loops: one batch at a time
(`train_on_batch`, `test_on_batch`, `predict_on_batch`) and the gradients of
a batch (`gradients`), which `Optimizer.apply_gradients` then applies."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from . import _weights
from ._data import network_inputs, network_targets
from ._masking import refuse_python_training
from ._threads import begin_native_run, end_native_run
from ._training import fit_optimizer, native_loss


def _scores(net, scores: dict, return_dict: bool):
    if return_dict:
        return scores
    return scores["loss"] if len(scores) == 1 else list(scores.values())


def train_on_batch(net, x, y, sample_weight=None, class_weight=None, return_dict=False):
    """One training step on the batch x, y: exactly the step `fit` takes on
    that batch (fit with shuffle=False over batches is a loop of these)."""
    x = network_inputs(net, x)
    history = net.history
    try:
        logs = net.fit(x, y, epochs=1, batch_size=x.shape[0], shuffle=False, verbose=0,
                       sample_weight=sample_weight, class_weight=class_weight).history
    finally:
        net.history = history
    return _scores(net, {key: values[0] for key, values in logs.items()}, return_dict)


def test_on_batch(net, x, y, sample_weight=None, return_dict=False):
    """The loss (with penalties) and metrics of the network on one batch."""
    x = network_inputs(net, x)
    return _scores(net, net.evaluate(x, y, batch_size=x.shape[0],
                                     sample_weight=sample_weight), return_dict)


def predict_on_batch(net, x) -> np.ndarray:
    x = network_inputs(net, x)
    return net.predict(x, batch_size=max(1, x.shape[0]))


def gradients(net, x, y, sample_weight=None) -> List[np.ndarray]:
    """Copies of the gradients of the batch loss (and the regularizer
    penalties) w.r.t. net.params, in that order, computed as a training
    step of fit computes them (training-mode layers, same native plan);
    nothing is updated."""
    return gradients_and_loss(net, x, y, sample_weight)[0]


def gradients_and_loss(net, x, y, sample_weight=None,
                       draw_ids=None) -> Tuple[List[np.ndarray], float]:
    """`gradients` and the batch loss (with the penalties) they are the
    gradient of; `draw_ids` as in `checked_gradients`."""
    if net.loss is None:
        raise RuntimeError("Network.gradients: set a loss with use(...) first")
    x = network_inputs(net, x)
    y = network_targets(net, y, x.shape[0])
    weights = _weights.combined(net, y, sample_weight, None)
    with net.guard.writing("Network.gradients"):
        return checked_gradients(net, x, y, weights, draw_ids)


def checked_gradients(net, x, y, weights=None,
                      draw_ids=None) -> Tuple[List[np.ndarray], float]:
    """`gradients_and_loss` of checked inputs and targets, for a caller that
    holds the network's guard.  With `draw_ids` (an index per sample), a
    native plan's sample r draws its dropout and augmentation numbers for
    index draw_ids[r]: the rows of a larger batch then get that batch's
    draws."""
    optimizer = fit_optimizer(net)
    plan = net.plans.training_plan(net, native_loss(net), optimizer.updater)
    if plan is None:
        refuse_python_training(net, "Network.gradients")
    n = x.shape[0]
    if plan is not None:
        if weights is not None:
            weights = np.ascontiguousarray(weights, net.dtype)
        begin_native_run(net.plans.training_threads(net, plan, n))
        try:
            loss = plan.gradients(x.reshape(n, -1), y, weights, draw_ids)
        finally:
            end_native_run()
    else:
        loss = _python_gradients(net, x, y, weights)
    return [g.copy() for g in net.grads], float(loss)


def _python_gradients(net, x, y, weights) -> float:
    """The per-layer forward and backward of a training step (Python path);
    the batch loss with the penalties."""
    loss = net.loss
    target = y if getattr(loss, "sparse", False) else y.reshape((len(x),) + net.output_shape)
    out = x
    for layer in net.layers:
        out = layer.forward(out, training=True)
    if weights is None:
        value = float(loss(target, out))
        grad = loss.gradient(target, out)
    else:
        value = float(loss(target, out, sample_weight=weights))
        grad = loss.gradient(target, out, sample_weight=weights)
    for layer in reversed(net.layers):
        grad = layer.backward(grad)
    for penalty in net.penalties:
        value += penalty.apply()
    return value
