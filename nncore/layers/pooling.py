"""Pooling layers: MaxPool2D, AvgPool2D and GlobalAveragePooling2D (NHWC)."""
from __future__ import annotations

from typing import Optional

from .._native.pool import PoolOp
from ._window import as_pair, check_padding, image_shape, window_geometry
from .base import NativeLayer, Shape


class _Pool2D(NativeLayer):
    kind = ""

    def __init__(self, pool_size=2, strides=None, padding="valid", name: Optional[str] = None):
        super().__init__(name)
        self.pool_size = as_pair(self, pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else as_pair(self, strides, "strides")
        self.padding = check_padding(self, padding)
        if isinstance(self.padding, tuple) and any(p >= k for p, k in
                                                   zip(self.padding, self.pool_size)):
            raise ValueError(f"{type(self).__name__}: padding {self.padding} must be smaller "
                             f"than pool_size {self.pool_size}")

    def _geometry(self, input_shape: Shape):
        shape = image_shape(self, input_shape)
        if self.padding == "valid" and (self.pool_size[0] > shape[0]
                                        or self.pool_size[1] > shape[1]):
            raise ValueError(f"{type(self).__name__}: pool_size {self.pool_size} is larger "
                             f"than the input of shape {(None,) + shape}")
        return window_geometry(self, shape, self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        (oh, ow), _ = self._geometry(input_shape)
        return (oh, ow, input_shape[2])

    def make_ops(self) -> list:
        shape = image_shape(self, self._built_input_shape())
        out, pad = self._geometry(shape)
        return [PoolOp(self.kind, self.dtype, shape, out, self.pool_size, self.strides, pad)]

    def get_config(self) -> dict:
        return {"pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding if isinstance(self.padding, str) else
                list(self.padding), "name": self.name}

    def __repr__(self) -> str:
        text = f"{type(self).__name__}({self.pool_size}"
        if self.strides != self.pool_size:
            text += f", strides={self.strides}"
        if self.padding != "valid":
            text += f", padding={self.padding!r}"
        return text + ")"


class MaxPool2D(_Pool2D):
    """The maximum over each pool_size window (strides default to pool_size).
    With padding, windows take the maximum of the elements inside the image.

    Parameters
    ----------
    pool_size : int or (int, int), default 2
        The window's height and width.
    strides : int or (int, int), optional
        The step of the window (default: `pool_size`).
    padding : {"valid", "same"} or int or (int, int), default "valid"
        As in `Conv2D`.
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.MaxPool2D(2)], input_shape=(4, 4, 1))
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> net.predict(x)[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """
    kind = "max"


class AvgPool2D(_Pool2D):
    """The mean over each pool_size window (strides default to pool_size).
    With padding, windows average the elements inside the image only.

    Parameters
    ----------
    pool_size : int or (int, int), default 2
        The window's height and width.
    strides : int or (int, int), optional
        The step of the window (default: `pool_size`).
    padding : {"valid", "same"} or int or (int, int), default "valid"
        As in `Conv2D`.
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.AvgPool2D(2)], input_shape=(2, 2, 1))
    >>> net.predict(np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1)).ravel()
    array([1.5], dtype=float32)
    """
    kind = "avg"


class GlobalAveragePooling2D(NativeLayer):
    """The mean over height and width: (h, w, c) samples become (c,).

    Parameters
    ----------
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.GlobalAveragePooling2D()], input_shape=(2, 2, 3))
    >>> net.predict(np.ones((5, 2, 2, 3), dtype=np.float32)).shape
    (5, 3)
    """

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (image_shape(self, input_shape)[2],)

    def make_ops(self) -> list:
        shape = image_shape(self, self._built_input_shape())
        h, w, _ = shape
        return [PoolOp("avg", self.dtype, shape, (1, 1), (h, w), (h, w), (0, 0))]

    def __repr__(self) -> str:
        return "GlobalAveragePooling2D()"


MaxPooling2D = MaxPool2D
AveragePooling2D = AvgPool2D
