"""Validation and conversion of user arrays, done once at the boundary."""
from __future__ import annotations

import numpy as np

from ._native.data import all_finite
from .errors import in_layer


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
    with np.errstate(over="ignore"):      # overflow is reported below, by name
        converted = np.ascontiguousarray(array, dtype=dtype)
    if finite and not all_finite(converted):
        raise nonfinite_error(what, array, dtype)
    return converted


def nonfinite_error(what: str, source: np.ndarray, dtype) -> ValueError:
    """The error for data that is not finite once converted to `dtype`:
    NaN or inf in `source`, or finite values too large for `dtype`."""
    if source.dtype.kind == "f" and np.isfinite(source).all():
        largest = float(np.abs(source).max())
        name = np.dtype(dtype).name
        return ValueError(f"{what} holds values too large for {name} (largest magnitude "
                          f"{largest:g}; {name} holds up to {float(np.finfo(dtype).max):g}): "
                          f"scale the data, or use dtype='float64'")
    return ValueError(f"{what} contains NaN or inf")


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


def network_inputs(net, x, what: str = "x") -> np.ndarray:
    """x as the network's input: converted once, the network built from its
    sample shape if needed, and the shape checked against layer 0's."""
    x = as_float_array(x, net.dtype, what)
    if not net.built:
        net.build(x.shape[1:])
    if x.shape[1:] != net.input_shape:
        first = type(net.layers[0]).__name__
        raise ValueError(f"layer 0 ({first}): expected input shape "
                         f"{(None,) + net.input_shape}, received {x.shape}")
    check_first_layer_input(net, x, what)
    return x


def check_first_layer_input(net, x: np.ndarray, what: str = "x") -> None:
    """Let a first layer that reads more than numbers (Embedding: integer
    indices) check the network's input."""
    check = getattr(net.layers[0], "check_input", None)
    if check is not None:
        try:
            check(x, what)
        except ValueError as error:
            raise ValueError(in_layer(0, net.layers[0], error)) from None


def network_targets(net, y, n: int) -> np.ndarray:
    """y as targets of the network's loss for n samples: (n, target size),
    C-contiguous in the network's dtype (class labels for sparse losses)."""
    loss_name = getattr(net.loss, "name", type(net.loss).__name__)
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"y must be a numeric array, got dtype {y.dtype}")
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(f"x has {n} samples but y has "
                         f"{y.shape[0] if y.ndim else 'no sample axis'}")
    out_shape = net.output_shape
    out_size = int(np.prod(out_shape, dtype=np.int64))
    if getattr(net.loss, "sparse", False):
        width = out_shape[-1]
        rows = out_size // width
        if y.size != n * rows:
            raise ValueError(f"{loss_name}: expected one class label per sample "
                             f"row, shape {(n,) + out_shape[:-1]}, received {y.shape}")
        labels = y.reshape(n, rows)
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise ValueError(f"{loss_name}: labels must be integers")
        if labels.min() < 0 or labels.max() >= width:
            raise ValueError(f"{loss_name}: labels must be in [0, {width}), "
                             f"found {labels.min():g}..{labels.max():g}")
        return np.ascontiguousarray(labels, dtype=net.dtype)
    if y.size != n * out_size:
        hint = ""
        if y.size == n and out_shape[-1] > 1:
            hint = (" (for integer class labels use 'sparse_categorical_crossentropy' "
                    "or nncore.utils.to_categorical)")
        raise ValueError(f"{loss_name}: expected targets of shape "
                         f"{(None,) + out_shape} like the network output, received "
                         f"{y.shape}{hint}")
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(y.reshape(n, out_size), dtype=net.dtype)
    if not np.isfinite(converted).all():
        raise nonfinite_error("y", y, net.dtype)
    return converted
