"""Sliding-window geometry shared by convolution and pooling layers."""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np

Pair = Tuple[int, int]


def as_pair(layer, value, what: str, minimum: int = 1) -> Pair:
    """(a, b) from an int or a pair of ints, each >= minimum."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        ok = len(pair) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                    and v >= minimum for v in pair)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{type(layer).__name__}: {what} must be an int or a pair of "
                         f"ints >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def check_padding(layer, padding) -> Union[str, Pair]:
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"{type(layer).__name__}: padding must be 'valid', 'same' or "
                             f"an int or pair of ints >= 0, got {padding!r}")
        return padding
    return as_pair(layer, padding, "padding", 0)


def image_shape(layer, input_shape) -> Tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"{type(layer).__name__}: expected input of shape "
                         f"(None, height, width, channels), received {(None,) + tuple(input_shape)}")
    return int(input_shape[0]), int(input_shape[1]), int(input_shape[2])


def window_geometry(layer, input_shape, size: Pair, strides: Pair, padding) -> Tuple[Pair, Pair]:
    """((out_h, out_w), (pad_top, pad_left)) of a window sliding over (h, w, c)
    samples.  'same' gives ceil(input / stride) outputs with any odd extra
    padding at the bottom/right, as in Keras; an int pads both sides."""
    out, pad = [], []
    for axis, (n, k, s) in enumerate(zip(input_shape[:2], size, strides)):
        if padding == "same":
            o = -(-n // s)
            p = max((o - 1) * s + k - n, 0) // 2
        else:
            p = 0 if padding == "valid" else padding[axis]
            if n + 2 * p < k:
                raise ValueError(f"{type(layer).__name__}: window {tuple(size)} does not fit "
                                 f"the input of shape {(None,) + tuple(input_shape)} with "
                                 f"padding {padding!r}")
            o = (n + 2 * p - k) // s + 1
        out.append(o)
        pad.append(p)
    return (out[0], out[1]), (pad[0], pad[1])
