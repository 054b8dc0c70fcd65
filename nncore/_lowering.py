"""Lowering: the layer list of a network becomes the list of native ops that
run it, by what the layers compute rather than how they were written.

* An element-wise activation (ReLU(), Activation("tanh"), LeakyReLU(0.2),
  the article's ActivationLayer(relu, relu_prime), ...) right after a Dense
  or Conv2D without an activation of its own joins that op's epilogue, as
  `activation=` on the layer would.  In training a Dense that starts the
  network keeps its activation as an op of its own, so that per-sample SGD
  can still defer the Dense's updates (core.pxd: SampleWindow).
* Conv2D + activation + MaxPool2D (non-overlapping windows, no padding)
  becomes one conv+pool op.
* At inference, BatchNormalization right after a Dense or Conv2D without an
  activation is folded into a copy of that layer's weights and bias,
  Dropout disappears, and Flatten is a view (no op, no copy).

The fusions compute the same values as the separate ops (training results
do not change); only the folding and the conv+pool op round differently,
within a few units in the last place."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import numpy as np

from ._native.reshape import ReshapeOp
from .layers.activation import EPILOGUE, Activation, epilogue_activation
from .layers.conv import Conv2D
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.normalization import BatchNormalization
from .layers.pooling import MaxPool2D
from .layers.reshape import Flatten
from .layers.residual import Residual


@dataclass
class Step:
    """The native ops (none, for a layer that lowers to nothing) that compute
    the layers of the given indices, and how."""
    ops: List[Any]
    layers: Tuple[int, ...]
    algorithm: str
    folds: List["FoldedBatchNorm"] = field(default_factory=list)


def lower(layers, training: bool, inner: bool = False) -> Optional[List[Step]]:
    """The steps that run `layers` (built), or None when a layer runs in
    Python; `inner`: the layers of a Residual block (not the network's first)."""
    if any(layer.native_ops() is None for layer in layers):
        return None
    steps: List[Step] = []
    index = 0
    while index < len(layers):
        layer = layers[index]
        if _is_product(layer):
            step, index = _lower_product(layers, index, training, not (steps or inner))
        elif type(layer) is Residual:
            step, index = _lower_residual(layer, index, training), index + 1
        elif not training and _keeps_ops_of(layer, (Dropout, Flatten)):
            what = "view, no op" if isinstance(layer, Flatten) else "no op at inference"
            step, index = Step([], (index,), what), index + 1
        else:
            step = Step(list(layer.native_ops()), (index,), _describe_other(layer))
            index += 1
        steps.append(step)
    if not any(step.ops for step in steps):     # a plan needs an op: one copy
        size = int(np.prod(layers[0]._built_input_shape(), dtype=np.int64))
        steps[0].ops = [ReshapeOp(layers[0].dtype, size)]
    return steps


def _is_product(layer) -> bool:
    return _keeps_ops_of(layer, (Dense, Conv2D))


def _keeps_ops_of(layer, classes) -> bool:
    """`layer` is one of `classes` or a subclass that keeps the class's ops
    (a subclass with ops of its own is left as it is)."""
    return any(isinstance(layer, cls) and type(layer).make_ops is cls.make_ops
               for cls in classes)


def ops_of(steps: List[Step]) -> list:
    """The ops of the steps, in order."""
    return [op for step in steps for op in step.ops]


def _lower_product(layers, index: int, training: bool, first: bool):
    """The step of a Dense or Conv2D at `index` with the layers that join it,
    and the index of the next layer."""
    layer = layers[index]
    covered = [index]
    following = index + 1
    activation = None
    if layer.activation is not None:
        activation = (layer.activation, layer.activation_alpha)
    weights = (layer.params[0], layer.params[1] if layer.use_bias else None)
    folds: List[FoldedBatchNorm] = []
    if (not training and activation is None and following < len(layers)
            and type(layers[following]) is BatchNormalization):
        folds.append(FoldedBatchNorm(layer, layers[following]))
        weights = (folds[0].kernel, folds[0].bias)
        covered.append(following)
        following += 1
    if activation is None and following < len(layers):
        activation = epilogue_activation(layers[following])
        if activation is not None:
            covered.append(following)
            following += 1
    if activation is not None and activation[0] in ("identity", "linear"):
        activation = None
    fusable = activation is None or activation[0] in EPILOGUE
    bias = weights[1] is not None
    note = ""
    if isinstance(layer, Dense):
        fuse = not (training and first)
        ops = layer.dense_ops(weights, activation, fuse)
        text = "dense, GEMM"
        epilogue = _epilogue_parts(bias, activation if fuse and fusable else None)
        if not fuse and activation is not None:
            note = " (the first dense op of a training plan: per-sample SGD defers its updates)"
    else:
        pool = layers[following] if following < len(layers) else None
        if fusable and _fuses_pool(pool):
            covered.append(following)
            following += 1
        else:
            pool = None
        ops = layer.conv_ops(weights, activation, pool)
        epilogue = _epilogue_parts(bias, activation if fusable else None)
        if pool is not None:
            text = "conv+pool, " + _convpool_text(ops[0], training)
            epilogue = ["max"] + epilogue
            if ops[0].winograd and not training:
                note = " (im2col + GEMM for calls of under 16 pool windows)"
        else:
            text = "conv, " + ("GEMM (1x1: x is its own im2col)" if ops[0].direct
                               else "im2col + GEMM")
    if epilogue:
        text += ", epilogue " + " + ".join(epilogue)
    if folds:
        text += ", batch normalization folded into the weights"
    if len(ops) > 1:
        text += f"; {activation[0]} as an op of its own"
    return Step(ops, tuple(covered), text + note, folds), following


def _lower_residual(layer: Residual, index: int, training: bool) -> Step:
    """The step of a Residual block: its layers lowered as a network's
    are, between the two ops of the skip connection."""
    inner = lower(layer.layers, training, inner=True)
    assert inner is not None          # lower() checked that every layer is native
    text = "residual: " + "; ".join(step.algorithm for step in inner)
    return Step(layer.wrap_ops(ops_of(inner)), (index,), text,
                [fold for step in inner for fold in step.folds])


def _fuses_pool(pool) -> bool:
    return (type(pool) is MaxPool2D and pool.strides == pool.pool_size
            and pool.padding in ("valid", (0, 0)))


def _convpool_text(op, training: bool) -> str:
    if op.winograd and not training:
        return "Winograd F(2x2,3x3)"
    if op.by_tap:
        return "im2col tap by tap + GEMM"
    return "im2col + GEMM"


def _epilogue_parts(bias: bool, activation) -> List[str]:
    return (["bias"] if bias else []) + ([activation[0]] if activation else [])


def _describe_other(layer) -> str:
    if isinstance(layer, Activation):
        return f"activation, {layer.activation}"
    if isinstance(layer, Flatten):
        return "copy"
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", type(layer).__name__).lower()


class FoldedBatchNorm:
    """The weights of a Dense or Conv2D followed by a BatchNormalization, as
    one affine map: kernel * s and (bias - mean) * s + beta on the output
    axis, s = gamma / sqrt(moving_var + epsilon), computed in float64.
    `refresh` folds again when any source array has changed."""

    def __init__(self, layer, norm) -> None:
        self.sources = list(layer.params) + [norm.gamma, norm.beta, norm.moving_mean,
                                             norm.moving_var]
        self.layer, self.norm = layer, norm
        self.kernel = np.empty_like(layer.params[0])
        self.bias = np.empty(self.kernel.shape[-1], self.kernel.dtype)
        self.seen: List[np.ndarray] = []
        self.refresh()

    def refresh(self) -> None:
        if len(self.seen) == len(self.sources) and all(
                np.array_equal(a, b) for a, b in zip(self.sources, self.seen)):
            return
        kernel = self.layer.params[0]
        bias = self.layer.params[1] if self.layer.use_bias else None
        norm = self.norm
        scale = norm.gamma.astype(np.float64) / np.sqrt(
            norm.moving_var.astype(np.float64) + norm.epsilon)
        shift = -norm.moving_mean.astype(np.float64)
        if bias is not None:
            shift = shift + bias
        self.kernel[...] = kernel.astype(np.float64) * scale
        self.bias[...] = shift * scale + norm.beta
        self.seen = [np.array(a, copy=True) for a in self.sources]
