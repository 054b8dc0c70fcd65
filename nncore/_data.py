"""Validation and conversion of user arrays, done once at the boundary."""
from __future__ import annotations

import numpy as np

from ._native.data import all_finite


def as_float_array(data, dtype, what: str, finite: bool = True) -> np.ndarray:
    """A C-contiguous array of `dtype`, batch first, non-empty and (unless
    finite=False) free of NaN and inf.  Converts at most once."""
    if (type(data) is np.ndarray and data.dtype == dtype and data.flags.c_contiguous
            and data.ndim and data.size):
        # the common case, checked without temporaries
        if finite and not all_finite(data):
            raise ValueError(f"{what} contains NaN or inf")
        return data
    if isinstance(data, (list, tuple)):
        try:
            data = np.asarray(data)
        except ValueError:
            raise ValueError(f"{what}: the samples have different shapes") from None
    array = np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be a numeric array, got dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{what} must be batch first with at least one axis, got a scalar")
    if array.shape[0] == 0 or array.size == 0:
        raise ValueError(f"{what} is empty (shape {array.shape})")
    array = np.ascontiguousarray(array, dtype=dtype)
    if finite and not all_finite(array):
        raise ValueError(f"{what} contains NaN or inf")
    return array


def check_shape(shape, what: str) -> tuple:
    """A per-sample shape as a tuple of positive ints."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{what} must be a tuple of positive integers, got {shape!r}") from None
    if isinstance(shape, (str, bytes)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
            for d in dims):
        raise ValueError(f"{what} must be a tuple of positive integers, got {shape!r}")
    return tuple(int(d) for d in dims)


def check_positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_float(value, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")
    return number
