"""The arguments of one `fit` call, checked once (see Network.fit)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from . import callbacks as callbacks_module
from ._data import check_positive_float, check_positive_int


@dataclass(frozen=True)
class FitConfig:
    """What a fit was asked to do; the values are checked when it is made.
    `batch_size` None means the default of the data and the training style;
    `learning_rate` None means the optimizer's own rate (or schedule)."""

    epochs: int = 1
    batch_size: Optional[int] = None
    validation_data: Any = None
    validation_split: float = 0.0
    shuffle: bool = True
    verbose: int = 1
    callbacks: tuple = field(default_factory=tuple)
    initial_epoch: int = 0
    learning_rate: Optional[float] = None
    sample_weight: Any = None
    class_weight: Optional[dict] = None

    def __post_init__(self):
        epochs = check_positive_int(self.epochs, "epochs")
        initial = self.initial_epoch
        if isinstance(initial, bool) or not isinstance(initial, (int, np.integer)) \
                or not 0 <= initial < epochs:
            raise ValueError(f"initial_epoch must be an integer in [0, epochs={epochs}), "
                             f"got {initial!r}")
        if self.verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {self.verbose!r}")
        callbacks = tuple(self.callbacks or ())
        for callback in callbacks:
            if not isinstance(callback, callbacks_module.Callback):
                raise TypeError(f"callbacks must be nncore.callbacks.Callback objects, "
                                f"got {type(callback).__name__}")
        if self.validation_data is not None:
            if self.validation_split:
                raise ValueError("fit: give validation_data or validation_split, not both")
            if not isinstance(self.validation_data, (tuple, list)) \
                    or len(self.validation_data) != 2:
                raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
        checked = {"epochs": epochs, "initial_epoch": int(initial), "callbacks": callbacks}
        if self.batch_size is not None:
            checked["batch_size"] = check_positive_int(self.batch_size, "batch_size")
        if self.learning_rate is not None:
            checked["learning_rate"] = check_positive_float(self.learning_rate,
                                                            "learning_rate")
        for name, value in checked.items():
            object.__setattr__(self, name, value)
