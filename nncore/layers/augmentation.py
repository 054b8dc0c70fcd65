"""Image augmentation layers with Keras's names and arguments: RandomFlip,
RandomTranslation, RandomRotation, RandomZoom, RandomCrop and GaussianNoise.

They transform each sample in training only and pass inputs through at
inference (RandomCrop then takes the centre window).  Their draws come from
a generator seeded from the network's seed (or the layer's own `seed`) and
depend on seed, step and the sample's index in the batch; the generator is
saved with the model.  ONNX exports leave them out, except RandomCrop,
which changes the shape: exports keep its inference form, the centre window."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .._native.augment import FILL_MODES, AugmentOp
from .._native.data import new_shuffle_state
from ._window import image_shape
from .base import NativeLayer, Shape

INTERPOLATIONS = ("bilinear", "nearest")


class _Augmentation(NativeLayer):
    """Shared plumbing: the generator state (saved), the seed, the op."""

    kind = "affine"

    def __init__(self, seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(name)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"{type(self).__name__}: seed must be None or an integer >= 0, "
                             f"got {seed!r}")
        self.seed = None if seed is None else int(seed)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return image_shape(self, input_shape)

    def make_ops(self) -> list:
        draw = self.seed if self.seed is not None else int(self.rng.integers(2**63))
        self.rng_state = new_shuffle_state(draw)
        self.state = [self.rng_state]         # the generator: saved with the model
        return [AugmentOp(self.kind, self.dtype, image_shape(self, self._built_input_shape()),
                          self.rng_state, **self.op_arguments())]

    def op_arguments(self) -> dict:
        raise NotImplementedError

    def weight_shapes(self, input_shape):
        self.compute_output_shape(tuple(input_shape))
        return [(4,)]

    def get_config(self) -> dict:
        return {"seed": self.seed, "name": self.name}


def _range(layer, value, what: str, low: float = -math.inf, high: float = math.inf) -> tuple:
    """Keras's factor: a number f >= 0 means (-f, f); a pair (lower, upper)."""
    name = type(layer).__name__
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{name}: {what} must be >= 0 when a single number, got {value!r}")
        bounds = (-float(value), float(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            for v in value):
        bounds = (float(value[0]), float(value[1]))
    else:
        raise ValueError(f"{name}: {what} must be a number or a pair (lower, upper), "
                         f"got {value!r}")
    if not (all(math.isfinite(b) for b in bounds) and bounds[0] <= bounds[1]
            and low <= bounds[0] and bounds[1] <= high):
        raise ValueError(f"{name}: {what} must give lower <= upper within [{low}, {high}], "
                         f"got {value!r}")
    return bounds


def _set_fill(layer, fill_mode, interpolation, fill_value) -> None:
    """Check and set fill_mode, interpolation and fill_value."""
    name = type(layer).__name__
    if fill_mode not in FILL_MODES:
        raise ValueError(f"{name}: fill_mode must be one of {sorted(FILL_MODES)}, "
                         f"got {fill_mode!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{name}: interpolation must be one of {INTERPOLATIONS}, "
                         f"got {interpolation!r}")
    if isinstance(fill_value, bool) or not isinstance(fill_value, (int, float)) \
            or not math.isfinite(fill_value):
        raise ValueError(f"{name}: fill_value must be a finite number, got {fill_value!r}")
    layer.fill_mode, layer.interpolation = fill_mode, interpolation
    layer.fill_value = float(fill_value)


class _Affine(_Augmentation):
    def _fill_arguments(self) -> dict:
        return {"fill_mode": self.fill_mode, "fill_value": self.fill_value,
                "nearest": self.interpolation == "nearest"}

    def _fill_config(self) -> dict:
        return {"fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "fill_value": self.fill_value}


class RandomFlip(_Affine):
    """Flip each image left-right ('horizontal'), upside down ('vertical')
    or either ('horizontal_and_vertical'), each with probability 1/2.

    Parameters
    ----------
    mode : {"horizontal", "vertical", "horizontal_and_vertical"}
        Which flips to draw from (default "horizontal_and_vertical").
    seed : int, optional
        The layer's own seed (default: drawn from the network's seed).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If the mode is unknown.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    >>> net = nncore.Network([nncore.RandomFlip("horizontal")], input_shape=(8, 8, 1),
    ...                      seed=0)
    >>> np.array_equal(net.predict(x), x)                # inference: the identity
    True
    >>> y = net.layers[0].forward(x, training=True)      # training: some are flipped
    >>> [bool(np.array_equal(a, b[:, ::-1])) for a, b in zip(y, x)]
    [True, True, False, True]
    """

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", seed: Optional[int] = None,
                 name: Optional[str] = None):
        super().__init__(seed, name)
        if mode not in self.MODES:
            raise ValueError(f"RandomFlip: mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def op_arguments(self) -> dict:
        return {"flip_h": "horizontal" in self.mode, "flip_v": "vertical" in self.mode}

    def get_config(self) -> dict:
        return {"mode": self.mode, **super().get_config()}


class RandomTranslation(_Affine):
    """Shift each image by a random fraction of its height and width:
    `height_factor` / `width_factor` are a number f (a shift in [-f, f]) or a
    pair (lower, upper), within [-1, 1]; positive shifts move the image down
    and right.  The uncovered area is filled by `fill_mode` ('reflect',
    'wrap', 'constant' with `fill_value`, 'nearest').

    Parameters
    ----------
    height_factor, width_factor : float or (float, float)
        The vertical and horizontal shift as fractions of the height and width.
    fill_mode : {"reflect", "wrap", "constant", "nearest"}, default "reflect"
        What lies outside the image.
    interpolation : {"bilinear", "nearest"}, default "bilinear"
        How the input is sampled between pixels.
    fill_value : float, default 0.0
        The value outside the image with fill_mode "constant".
    seed : int, optional
        The layer's own seed (default: drawn from the network's seed).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If a factor, fill_mode or interpolation is out of range.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    >>> net = nncore.Network([nncore.RandomTranslation(0.1, 0.1, fill_mode="constant")],
    ...                      input_shape=(8, 8, 1), seed=0)
    >>> np.array_equal(net.predict(x), x)
    True
    >>> net.layers[0].forward(x, training=True).shape
    (4, 8, 8, 1)
    """

    def __init__(self, height_factor, width_factor, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: Optional[int] = None,
                 fill_value: float = 0.0, name: Optional[str] = None):
        super().__init__(seed, name)
        self.height_factor = _range(self, height_factor, "height_factor", -1, 1)
        self.width_factor = _range(self, width_factor, "width_factor", -1, 1)
        _set_fill(self, fill_mode, interpolation, fill_value)

    def op_arguments(self) -> dict:
        return {"ty": self.height_factor, "tx": self.width_factor, **self._fill_arguments()}

    def get_config(self) -> dict:
        return {"height_factor": list(self.height_factor),
                "width_factor": list(self.width_factor), **self._fill_config(),
                **super().get_config()}


class RandomRotation(_Affine):
    """Rotate each image about its centre by a random fraction of a full
    turn: `factor` f (in [-f, f] x 2 pi) or a pair (lower, upper); positive
    angles turn counter-clockwise.  Fill as in RandomTranslation.

    Parameters
    ----------
    factor : float or (float, float)
        The angle as a fraction of a full turn.
    fill_mode : {"reflect", "wrap", "constant", "nearest"}, default "reflect"
        What lies outside the image.
    interpolation : {"bilinear", "nearest"}, default "bilinear"
        How the input is sampled between pixels.
    fill_value : float, default 0.0
        The value outside the image with fill_mode "constant".
    seed : int, optional
        The layer's own seed (default: drawn from the network's seed).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If the factor, fill_mode or interpolation is out of range.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    >>> net = nncore.Network([nncore.RandomRotation(0.05)], input_shape=(8, 8, 1), seed=0)
    >>> np.array_equal(net.predict(x), x)
    True
    """

    def __init__(self, factor, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: Optional[int] = None, fill_value: float = 0.0,
                 name: Optional[str] = None):
        super().__init__(seed, name)
        self.factor = _range(self, factor, "factor")
        _set_fill(self, fill_mode, interpolation, fill_value)

    def op_arguments(self) -> dict:
        return {"rot": self.factor, **self._fill_arguments()}

    def get_config(self) -> dict:
        return {"factor": list(self.factor), **self._fill_config(), **super().get_config()}


class RandomZoom(_Affine):
    """Zoom each image about its centre: `height_factor` f (in [-f, f]) or a
    pair (lower, upper), lower > -1; positive values zoom out (the image
    shrinks by 1 / (1 + factor)), negative values zoom in.  `width_factor`
    None zooms both axes alike.  Fill as in RandomTranslation.

    Parameters
    ----------
    height_factor : float or (float, float)
        The vertical zoom (all values > -1).
    width_factor : float or (float, float), optional
        The horizontal zoom (default: the vertical zoom, the aspect kept).
    fill_mode : {"reflect", "wrap", "constant", "nearest"}, default "reflect"
        What lies outside the image.
    interpolation : {"bilinear", "nearest"}, default "bilinear"
        How the input is sampled between pixels.
    fill_value : float, default 0.0
        The value outside the image with fill_mode "constant".
    seed : int, optional
        The layer's own seed (default: drawn from the network's seed).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If a factor is -1 or less, or fill_mode or interpolation is unknown.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    >>> net = nncore.Network([nncore.RandomZoom(0.1)], input_shape=(8, 8, 1), seed=0)
    >>> np.array_equal(net.predict(x), x)
    True
    """

    def __init__(self, height_factor, width_factor=None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: Optional[int] = None,
                 fill_value: float = 0.0, name: Optional[str] = None):
        super().__init__(seed, name)
        self.height_factor = _range(self, height_factor, "height_factor")
        self.width_factor = None if width_factor is None else \
            _range(self, width_factor, "width_factor")
        for bounds in (self.height_factor, self.width_factor or (0, 0)):
            if bounds[0] <= -1:
                raise ValueError(f"RandomZoom: zoom factors must be > -1, got {bounds}")
        _set_fill(self, fill_mode, interpolation, fill_value)

    def op_arguments(self) -> dict:
        return {"zy": self.height_factor, "zx": self.width_factor or (0, 0),
                "same_zoom": self.width_factor is None, **self._fill_arguments()}

    def get_config(self) -> dict:
        return {"height_factor": list(self.height_factor),
                "width_factor": None if self.width_factor is None else list(self.width_factor),
                **self._fill_config(), **super().get_config()}


class RandomCrop(_Augmentation):
    """Crop each image to (height, width) at a random position in training,
    at the centre at inference (the corner at ((H - height) // 2,
    (W - width) // 2)); ONNX exports keep the centre crop.

    Parameters
    ----------
    height, width : int
        The size of the window, at most the image's.
    seed : int, optional
        The layer's own seed (default: drawn from the network's seed).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If height or width is not a positive integer, or (when the network
        is built) larger than the image.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    >>> net = nncore.Network([nncore.RandomCrop(6, 5)], input_shape=(8, 8, 1), seed=0)
    >>> np.array_equal(net.predict(x), x[:, 1:7, 1:6])    # the centre at inference
    True
    >>> net.layers[0].forward(x, training=True).shape
    (4, 6, 5, 1)
    """

    kind = "crop"

    def __init__(self, height: int, width: int, seed: Optional[int] = None,
                 name: Optional[str] = None):
        super().__init__(seed, name)
        for what, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"RandomCrop: {what} must be a positive integer, got {value!r}")
        self.height, self.width = int(height), int(width)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        h, w, c = image_shape(self, input_shape)
        if h < self.height or w < self.width:
            raise ValueError(f"RandomCrop: expected images of at least {self.height}x"
                             f"{self.width}, received {(None,) + tuple(input_shape)}")
        return (self.height, self.width, c)

    def op_arguments(self) -> dict:
        return {"crop": (self.height, self.width)}

    def get_config(self) -> dict:
        return {"height": self.height, "width": self.width, **super().get_config()}


class GaussianNoise(_Augmentation):
    """Add zero-mean Gaussian noise of standard deviation `stddev` to every
    value in training (any input shape).

    Parameters
    ----------
    stddev : float
        The standard deviation of the noise, >= 0.
    seed : int, optional
        The layer's own seed (default: drawn from the network's seed).
    name : str, optional
        The layer's name in summaries and saved files.

    Raises
    ------
    ValueError
        If stddev is negative or not finite.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    >>> net = nncore.Network([nncore.GaussianNoise(0.1)], input_shape=(8, 8, 1), seed=0)
    >>> np.array_equal(net.predict(x), x)
    True
    >>> noise = net.layers[0].forward(x, training=True) - x
    >>> bool(0.08 < noise.std() < 0.12)
    True
    """

    kind = "noise"

    def __init__(self, stddev: float, seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(seed, name)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) \
                or not math.isfinite(stddev) or stddev < 0:
            raise ValueError(f"GaussianNoise: stddev must be a finite number >= 0, "
                             f"got {stddev!r}")
        self.stddev = float(stddev)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def make_ops(self) -> list:
        draw = self.seed if self.seed is not None else int(self.rng.integers(2**63))
        self.rng_state = new_shuffle_state(draw)
        self.state = [self.rng_state]
        size = int(np.prod(self._built_input_shape(), dtype=np.int64))
        return [AugmentOp("noise", self.dtype, (1, 1, size), self.rng_state,
                          stddev=self.stddev)]

    def get_config(self) -> dict:
        return {"stddev": self.stddev, **super().get_config()}
