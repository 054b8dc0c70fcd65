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
