"""The memory budget: the most one allocation group of nncore may take.

A network's parameters (checked when it is built, before any weight is
drawn) and one plan's buffers for a batch (activations, gradients,
workspaces; checked before they are allocated) must each fit in the budget,
so a hostile model file or config (a `Dense(10**12)`, a convolution with a
huge kernel, a huge input shape) raises ValueError instead of taking the
machine's memory.  Default 4 GiB; `nncore.set_memory_budget(nbytes)` or the
environment variable NNCORE_MEMORY_BUDGET (bytes) changes it.
"""
from __future__ import annotations

import os
from typing import Optional

DEFAULT_BUDGET = 4 << 30
_budget: Optional[int] = None


def get_memory_budget() -> int:
    """The memory budget: the most bytes a network's parameters, or a
    plan's buffers for one batch, may each take.

    Returns
    -------
    int
        The budget in bytes (NNCORE_MEMORY_BUDGET, or the default, until
        `set_memory_budget` changes it).

    Raises
    ------
    ValueError
        If NNCORE_MEMORY_BUDGET is not a positive number of bytes.

    Examples
    --------
    >>> import nncore
    >>> nncore.get_memory_budget() > 0
    True
    """
    global _budget
    if _budget is None:
        text = os.environ.get("NNCORE_MEMORY_BUDGET", "").strip()
        try:
            _budget = int(text) if text else DEFAULT_BUDGET
        except ValueError:
            raise ValueError(f"NNCORE_MEMORY_BUDGET must be a number of bytes, "
                             f"got {text!r}") from None
        if _budget <= 0:
            raise ValueError(f"NNCORE_MEMORY_BUDGET must be positive, got {text!r}")
    return _budget


def set_memory_budget(nbytes: int) -> None:
    """Let a network's parameters, and a plan's buffers for one batch, each
    take up to `nbytes` bytes.

    Parameters
    ----------
    nbytes : int
        The new budget in bytes, positive.

    Raises
    ------
    ValueError
        If nbytes is not a positive integer.

    Examples
    --------
    >>> import nncore
    >>> before = nncore.get_memory_budget()
    >>> nncore.set_memory_budget(2**30)
    >>> nncore.get_memory_budget()
    1073741824
    >>> nncore.set_memory_budget(before)
    """
    global _budget
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
        raise ValueError(f"set_memory_budget takes a positive number of bytes, got {nbytes!r}")
    _budget = nbytes


def check(nbytes: int, what: str) -> None:
    """ValueError when `what` (which needs nbytes bytes) is over the budget."""
    budget = get_memory_budget()
    if nbytes > budget:
        raise ValueError(f"{what} need {_size(nbytes)}, over nncore's memory budget of "
                         f"{_size(budget)}; if that is intended, raise the budget with "
                         f"nncore.set_memory_budget(nbytes) or NNCORE_MEMORY_BUDGET")


def _size(nbytes: int) -> str:
    if nbytes < 1024:
        return f"{nbytes} bytes"
    value = float(nbytes)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024:
            break
    else:
        unit = "PiB"
        value /= 1024
    return f"{value:.1f} {unit}"
