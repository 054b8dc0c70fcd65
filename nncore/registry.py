"""Registries of the layer, loss, optimizer and metric classes that a saved
network may name.  Loading constructs only registered classes, by name, from
JSON configs: a model file cannot make nncore import or run anything else.

Classes defined inside the nncore package register themselves when their
module is imported (see `auto_register`); user-defined classes register with
`@nncore.register_layer` (defined beside `Layer`), `register_loss`,
`register_optimizer` or `register_metric`.  This module imports nothing else
of nncore but its errors, so every other module may use it.
"""
from __future__ import annotations

from typing import Dict, Optional

from .errors import ModelFormatError, unknown_name

_REGISTRIES: Dict[str, Dict[str, type]] = {"layer": {}, "loss": {}, "optimizer": {},
                                           "metric": {}}


def register(kind: str, cls: type, name: Optional[str] = None) -> type:
    """Register `cls` as a savable class of `kind` ("layer", "loss", "optimizer")."""
    if not isinstance(cls, type):
        raise TypeError(f"register_{kind} takes a class, got {cls!r}")
    name = cls.__name__ if name is None else name
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register_{kind}: the name must be an identifier, got {name!r}")
    table = _REGISTRIES[kind]
    known = table.get(name)
    if known is not None and known is not cls and \
            (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"register_{kind}: the name {name!r} is already taken by "
                         f"{known.__module__}.{known.__qualname__}")
    table[name] = cls
    setattr(cls, "_registered_name", name)
    return cls


def register_loss(cls: Optional[type] = None, *, name: Optional[str] = None):
    """Make a user-defined `nncore.losses.Loss` subclass savable."""
    def decorate(klass):
        return register("loss", klass, name)
    return decorate if cls is None else decorate(cls)


def register_optimizer(cls: Optional[type] = None, *, name: Optional[str] = None):
    """Make a user-defined `nncore.optimizers.Optimizer` subclass savable."""
    def decorate(klass):
        return register("optimizer", klass, name)
    return decorate if cls is None else decorate(cls)


def register_metric(cls: Optional[type] = None, *, name: Optional[str] = None):
    """Make a user-defined `nncore.metrics.Metric` subclass savable."""
    def decorate(klass):
        return register("metric", klass, name)
    return decorate if cls is None else decorate(cls)


def auto_register(kind: str, cls: type) -> None:
    """Called by the base classes' __init_subclass__: register subclasses that
    are defined inside nncore itself (user classes register explicitly)."""
    if cls.__module__.split(".")[0] == "nncore" and not cls.__name__.startswith("_"):
        register(kind, cls)


def registered_name(kind: str, obj) -> str:
    """The name under which the class of `obj` is registered, or ValueError."""
    cls = type(obj)
    name = getattr(cls, "_registered_name", None)
    # _registered_name is inherited: check that it really names this class
    if name is None or _REGISTRIES[kind].get(name) is not cls:
        hint = " with @nncore.register_layer" if kind == "layer" else ""
        raise ValueError(f"{cls.__name__} is not a registered {kind} class and cannot be "
                         f"saved; register it{hint}")
    return name


def lookup(kind: str, name) -> type:
    """The registered class called `name`, or ModelFormatError naming it."""
    table = _REGISTRIES[kind]
    if not isinstance(name, str) or name not in table:
        decorator = "nncore.register_layer" if kind == "layer" else \
            f"nncore.registry.register_{kind}"
        hint = f"; register your own classes with @{decorator} before loading"
        raise ModelFormatError(unknown_name(f"{kind} class", name, table, hint))
    return table[name]
