"""Small helpers for preparing data."""
from __future__ import annotations

from typing import Optional

import numpy as np


def to_categorical(labels, num_classes: Optional[int] = None, dtype="float32") -> np.ndarray:
    """One-hot rows for integer class labels (as keras.utils.to_categorical)."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biu":
        if labels.dtype.kind != "f" or (labels != np.round(labels)).any():
            raise ValueError("to_categorical takes integer class labels")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError("to_categorical: labels must be >= 0")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif labels.size and labels.max() >= num_classes:
        raise ValueError(f"to_categorical: label {labels.max()} >= num_classes {num_classes}")
    out = np.zeros(labels.shape + (num_classes,), dtype)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out


def split_tail(x, y, count: int):
    """(x[-count:], y[-count:]): the last `count` samples, as fit's
    `validation_split` holds them out (before any shuffling, as in Keras)."""
    count = int(count)
    if not 0 < count < len(x):
        raise ValueError(f"split_tail: count must be in (0, {len(x)}), got {count}")
    return x[-count:], y[-count:]


def train_test_split(*arrays, test_size: float = 0.25, shuffle: bool = True,
                     seed: Optional[int] = None) -> list:
    """Split arrays (same first axis) into train and test parts:
    [a_train, a_test, b_train, b_test, ...].  `test_size` is a fraction in
    (0, 1) or a sample count; without `shuffle` the test part is the tail."""
    if not arrays:
        raise ValueError("train_test_split needs at least one array")
    data = [np.asarray(a) for a in arrays]
    n = len(data[0])
    if any(len(a) != n for a in data):
        raise ValueError(f"train_test_split: arrays differ in length "
                         f"{[len(a) for a in data]}")
    if isinstance(test_size, (float, np.floating)):
        if not 0 < test_size < 1:
            raise ValueError(f"train_test_split: test_size must be in (0, 1), got {test_size}")
        held = int(round(n * test_size))
    else:
        held = int(test_size)
    if not 0 < held < n:
        raise ValueError(f"train_test_split: test_size={test_size!r} of {n} samples "
                         f"leaves an empty part")
    order = (np.random.default_rng(seed).permutation(n) if shuffle
             else np.arange(n))
    train, test = order[:n - held], order[n - held:]
    out = []
    for a in data:
        out += [a[train], a[test]]
    return out
