"""Weight initializers, drawn from the network's random generator."""
from __future__ import annotations

from typing import Callable, Union

import numpy as np

from .errors import unknown_name

Initializer = Callable[[np.random.Generator, tuple, int, int], np.ndarray]


def glorot_uniform(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def glorot_normal(rng, shape, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), shape)


def he_uniform(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, shape)


def he_normal(rng, shape, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


def uniform(rng, shape, fan_in, fan_out):
    """Uniform in [-0.5, 0.5), the original article's initialization."""
    return rng.uniform(-0.5, 0.5, shape)


def zeros(rng, shape, fan_in, fan_out):
    return np.zeros(shape)


_BY_NAME = {f.__name__: f for f in
            (glorot_uniform, glorot_normal, he_uniform, he_normal, uniform, zeros)}


def name_of(initializer: Initializer) -> str:
    """The name of a built-in initializer (for saving); ValueError for others."""
    for name, function in _BY_NAME.items():
        if function is initializer:
            return name
    raise ValueError(f"the initializer {initializer!r} is not a built-in one and cannot "
                     f"be saved; use one of {sorted(_BY_NAME)}")


def get(identifier: Union[str, Initializer]) -> Initializer:
    """An initializer from its name or a callable (rng, shape, fan_in, fan_out)."""
    if callable(identifier):
        return identifier
    try:
        return _BY_NAME[identifier]
    except (KeyError, TypeError):
        raise ValueError(unknown_name("initializer", identifier, _BY_NAME,
                                      " or pass a callable")) from None
