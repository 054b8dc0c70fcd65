"""Checks that catch common mistakes early: a loss that does not match what
the last layer outputs, a validation split of data sorted by label, and
Keras file names given to nncore's writer."""
from __future__ import annotations

import os
import sys
import warnings
from types import FrameType
from typing import Optional

import numpy as np

from .losses import BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy

# last-layer activations whose outputs are probabilities
PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")
# file name endings of Keras' own formats
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
# how far probabilities may stray from [0, 1] and rows from summing to 1
RANGE_TOLERANCE = 1e-6
SUM_TOLERANCE = 1e-3
# rows of the first batch that the output check looks at, at most
CHECK_ROWS = 256


def check_save_path(path, what: str) -> None:
    """Refuse a Keras file name: the file would hold nncore's format, which
    Keras cannot read."""
    name = os.fspath(path)
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    if name.lower().endswith(KERAS_SUFFIXES):
        raise ValueError(f"{what}: {name!r} has a Keras file extension, but nncore writes "
                         f"its own format, which Keras cannot read; use a name ending in "
                         f".nncore")


# ------------------------------------------------------- loss vs last layer
def _last_layer(net) -> str:
    index = len(net.layers) - 1
    return f"layer {index} ({type(net.layers[index]).__name__})"


def _output_activation(net):
    activation = getattr(net.layers[-1], "activation", None)
    return activation if isinstance(activation, str) else None


def check_loss_and_outputs(net, x=None, out=None) -> None:
    """Warn (UserWarning) when the loss and the last layer disagree: a loss
    on probabilities (from_logits=False) whose network outputs are not
    probabilities, or a loss on logits (from_logits=True) after a softmax or
    sigmoid.  Looks at `out` (network outputs) or, when not given, runs the
    network on at most CHECK_ROWS samples of `x`."""
    loss = net.loss
    if not isinstance(loss, (BinaryCrossentropy, CategoricalCrossentropy)):
        return
    name = type(loss).__name__
    binary = isinstance(loss, BinaryCrossentropy)
    if loss.from_logits:
        activation = _output_activation(net)
        if activation in PROBABILITY_ACTIVATIONS:
            warnings.warn(
                f"{name}(from_logits=True) expects logits (raw scores), but the last "
                f"layer, {_last_layer(net)}, applies {activation}: remove the "
                f"{activation} or use {name}(from_logits=False)", UserWarning,
                stacklevel=_caller_outside_nncore())
        return
    out = net.predict(x[:CHECK_ROWS]) if out is None else out[:CHECK_ROWS]
    problem = probability_problem(out, categorical=not binary)
    if problem:
        warnings.warn(
            f"{name}(from_logits=False) expects probabilities, but the last layer, "
            f"{_last_layer(net)}, outputs {problem}: use {name}(from_logits=True) or end "
            f"the network with a {'Sigmoid' if binary else 'Softmax'} layer", UserWarning,
            stacklevel=_caller_outside_nncore())


def _class_labels(loss, y) -> Optional[np.ndarray]:
    """The class of every target row for a classification loss, else None."""
    if isinstance(loss, SparseCategoricalCrossentropy):
        return y.reshape(len(y), -1)[:, 0]
    if isinstance(loss, CategoricalCrossentropy):
        rows = y.reshape(len(y), -1)
        return rows.argmax(axis=1) if rows.shape[1] > 1 else None
    if isinstance(loss, BinaryCrossentropy):
        rows = y.reshape(len(y), -1)
        return rows[:, 0] if rows.shape[1] == 1 else None
    return None


def check_validation_split(loss, y_train, y_val, split: float) -> None:
    """Warn (UserWarning) when the held-out tail of a classification data
    set has classes the training part lacks, or only one class: the data is
    most likely sorted by label."""
    train, val = _class_labels(loss, y_train), _class_labels(loss, y_val)
    if train is None or val is None:
        return
    unseen = sorted(set(np.unique(val).tolist()) - set(np.unique(train).tolist()))
    single = np.unique(val).size == 1 and np.unique(train).size > 1
    if not unseen and not single:
        return
    what = (f"classes {_shown(unseen)} that the training part lacks" if unseen
            else f"only class {_shown(np.unique(val).tolist())}")
    warnings.warn(
        f"fit: validation_split={split} holds out the last {len(y_val)} samples, which "
        f"have {what}: the data looks sorted by label. Shuffle it before fit "
        f"(nncore.utils.train_test_split, or index x and y with one permutation)",
        UserWarning, stacklevel=_caller_outside_nncore())


def _shown(values: list) -> str:
    values = [int(v) if float(v).is_integer() else v for v in values]
    return ", ".join(map(str, values[:10])) + (", ..." if len(values) > 10 else "")


def _caller_outside_nncore() -> int:
    """The warnings stacklevel that points at the first caller outside the
    nncore package (the user's fit or evaluate call), for the function that
    calls this one."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame: Optional[FrameType] = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def probability_problem(out: np.ndarray, categorical: bool) -> str:
    """'' when `out` holds probabilities (rows summing to 1 if
    `categorical`), else a description of what it holds."""
    if out.size == 0:
        return ""
    low, high = float(out.min()), float(out.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        return "values that are not finite"
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        return f"values in [{low:.3g}, {high:.3g}], outside [0, 1]"
    if categorical and out.shape[-1] > 1:
        sums = out.reshape(-1, out.shape[-1]).sum(axis=1, dtype=np.float64)
        if np.abs(sums - 1).max() > SUM_TOLERANCE:
            return f"rows summing to {sums.min():.3g}..{sums.max():.3g}, not 1"
    return ""


def check_verbose(verbose, what: str) -> None:
    """Accept Keras' verbose values (0, 1, 2, 'auto') where nncore prints nothing."""
    if verbose not in (0, 1, 2, "auto"):
        raise ValueError(f"{what}: verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
