"""Per-sample loss weights: `sample_weight` and `class_weight` checked and
combined once, before any native code runs."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ._data import nonfinite_error


def check_sample_weight(sample_weight, n: int, dtype, what: str = "sample_weight",
                        nonzero: bool = False) -> np.ndarray:
    """A C-contiguous (n,) array of `dtype` holding finite, non-negative
    weights (with nonzero, not all of them zero)."""
    try:
        weights = np.asarray(sample_weight)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a 1-D array of {n} numbers, "
                        f"got {type(sample_weight).__name__}") from None
    if weights.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be a numeric array, got dtype {weights.dtype}")
    if weights.ndim == 2 and weights.shape[1:] == (1,):
        weights = weights[:, 0]
    if weights.ndim != 1 or weights.shape[0] != n:
        raise ValueError(f"{what}: expected one weight per sample, shape ({n},), "
                         f"received {weights.shape}")
    with np.errstate(over="ignore"):      # overflow is reported below, by name
        converted = np.ascontiguousarray(weights, dtype=dtype)
    if not np.isfinite(converted).all():
        raise nonfinite_error(what, weights, dtype)
    weights = converted
    if (weights < 0).any():
        raise ValueError(f"{what} must be non-negative, found {weights.min():g}")
    if nonzero and not weights.any():
        raise ValueError(f"{what}: every weight is zero, so there is nothing to train on; "
                         f"give at least one sample a positive weight")
    return weights


def class_labels(net, y: np.ndarray) -> np.ndarray:
    """The class index of every sample of the checked targets y (n, target_size):
    the label for sparse losses, the argmax of one-hot rows, 0/1 for a single
    output unit."""
    width = net.output_shape[-1]
    if getattr(net.loss, "sparse", False):
        if y.shape[1] != 1:
            raise ValueError(f"class_weight needs one class label per sample; the targets "
                             f"hold {y.shape[1]} labels per sample (use sample_weight)")
        return y[:, 0].astype(np.int64)
    if y.shape[1] == 1:
        labels = y[:, 0]
        if ((labels != 0) & (labels != 1)).any():
            raise ValueError("class_weight needs class labels as targets; a single output "
                             "unit takes targets 0 and 1")
        return labels.astype(np.int64)
    if y.shape[1] != width:
        raise ValueError(f"class_weight needs one one-hot row per sample; the targets "
                         f"hold {y.shape[1]} values per sample (use sample_weight)")
    if ((y != 0) & (y != 1)).any() or (y.sum(1) != 1).any():
        raise ValueError("class_weight needs one-hot target rows (or integer labels with "
                         "sparse_categorical_crossentropy)")
    return y.argmax(1)


def class_weight_table(class_weight, n_classes: int) -> np.ndarray:
    """Weights of classes 0..n_classes-1 from a dict {class index: weight};
    classes not in the dict weigh 1."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict from class index to weight, "
                        f"got {type(class_weight).__name__}")
    table = np.ones(n_classes, np.float64)
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) \
                or not 0 <= key < n_classes:
            raise ValueError(f"class_weight: unknown class {key!r}; the network's classes "
                             f"are 0..{n_classes - 1}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"class_weight: the weight of class {key} must be a number, "
                            f"got {value!r}")
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"class_weight: the weight of class {key} must be a finite "
                             f"non-negative number, got {value!r}")
        table[int(key)] = value
    return table


def combined(net, y: np.ndarray, sample_weight, class_weight, nonzero: bool = False
             ) -> Optional[np.ndarray]:
    """The per-sample weights (n,) of the network dtype for checked targets y,
    sample_weight times the weight of each sample's class; None for neither.
    With nonzero, weights that are all zero raise ValueError."""
    if sample_weight is None and class_weight is None:
        return None
    if not hasattr(net.loss, "native"):      # a FunctionLoss: the article's functions
        raise TypeError("sample_weight and class_weight need a nncore.losses.Loss; a loss "
                        "given as Python functions has no per-sample weights")
    n = y.shape[0]
    weights = (check_sample_weight(sample_weight, n, np.float64)
               if sample_weight is not None else np.ones(n))
    if class_weight is not None:
        width = net.output_shape[-1]
        table = class_weight_table(class_weight, 2 if width == 1 else width)
        weights = weights * table[class_labels(net, y)]
    return check_sample_weight(weights, n, net.dtype, "sample_weight x class_weight"
                               if class_weight is not None else "sample_weight", nonzero)
