"""The `Flatten` layer (nncore.article adds `FlattenLayer`)."""
from __future__ import annotations

import numpy as np

from .._native.reshape import ReshapeOp
from .base import NativeLayer, Shape


class Flatten(NativeLayer):
    """Flattens each sample to one axis: (h, w, c) becomes (h*w*c,).

    Parameters
    ----------
    name : str, optional
        The layer's name in summaries and saved files.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.Network([nncore.Flatten()], input_shape=(2, 3, 4))
    >>> net.predict(np.zeros((5, 2, 3, 4), dtype=np.float32)).shape
    (5, 24)
    """

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (int(np.prod(input_shape, dtype=np.int64)),)

    def make_ops(self) -> list:
        return [ReshapeOp(self.dtype, int(np.prod(self._built_input_shape(), dtype=np.int64)))]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


