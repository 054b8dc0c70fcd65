"""Learning-rate schedules: a rate for every training step.

A schedule is called with the 0-based step number (the number of updates
done before this one) and returns the learning rate of that step, as in
Keras.  Any callable `step -> rate` works as a schedule too; these classes
also compute a whole run of steps at once with NumPy, which is how `fit`
feeds rates to the native training loop.
"""
from __future__ import annotations

import numpy as np


def _positive(value, what):
    number = float(value)
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return number


class LearningRateSchedule:
    """Base class: subclasses implement `rates(first_step, count)`; their
    constructor arguments are their attributes (get_config)."""

    def get_config(self) -> dict:
        return dict(vars(self))

    def rates(self, first_step: int, count: int) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        return float(self.rates(int(step), 1)[0])


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps), with the
    exponent floored when `staircase`."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False):
        self.initial_learning_rate = _positive(initial_learning_rate,
                                               "ExponentialDecay: initial_learning_rate")
        self.decay_steps = _positive(decay_steps, "ExponentialDecay: decay_steps")
        self.decay_rate = _positive(decay_rate, "ExponentialDecay: decay_rate")
        self.staircase = bool(staircase)

    def rates(self, first_step, count):
        p = np.arange(first_step, first_step + count, dtype=np.float64) / self.decay_steps
        if self.staircase:
            p = np.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p


class StepDecay(LearningRateSchedule):
    """initial_learning_rate * factor ** floor(step / step_size): the rate is
    multiplied by `factor` every `step_size` steps."""

    def __init__(self, initial_learning_rate: float, step_size: int, factor: float = 0.5):
        self.initial_learning_rate = _positive(initial_learning_rate,
                                               "StepDecay: initial_learning_rate")
        self.step_size = int(_positive(step_size, "StepDecay: step_size"))
        self.factor = _positive(factor, "StepDecay: factor")

    def rates(self, first_step, count):
        steps = np.arange(first_step, first_step + count) // self.step_size
        return self.initial_learning_rate * self.factor ** steps.astype(np.float64)


class CosineDecay(LearningRateSchedule):
    """Cosine decay from initial_learning_rate to initial_learning_rate * alpha
    over decay_steps steps, then constant:
    rate = initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps)
    / decay_steps)) + alpha)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0):
        self.initial_learning_rate = _positive(initial_learning_rate,
                                               "CosineDecay: initial_learning_rate")
        self.decay_steps = _positive(decay_steps, "CosineDecay: decay_steps")
        alpha = float(alpha)
        if not 0 <= alpha <= 1:
            raise ValueError(f"CosineDecay: alpha must be in [0, 1], got {alpha!r}")
        self.alpha = alpha

    def rates(self, first_step, count):
        steps = np.minimum(np.arange(first_step, first_step + count, dtype=np.float64),
                           self.decay_steps)
        cosine = 0.5 * (1 + np.cos(np.pi * steps / self.decay_steps))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)


_SCHEDULES = {cls.__name__: cls for cls in (ExponentialDecay, StepDecay, CosineDecay)}


def serialize(rate):
    """A learning rate as JSON data: the number, or {'schedule': name,
    'config': {...}} for the schedules of this module."""
    if isinstance(rate, LearningRateSchedule) and type(rate).__name__ in _SCHEDULES:
        return {"schedule": type(rate).__name__, "config": rate.get_config()}
    if callable(rate):
        raise ValueError(f"cannot save the learning rate {rate!r}: only numbers and the "
                         f"schedules {sorted(_SCHEDULES)} can be saved")
    return float(rate)


def deserialize(data):
    """The inverse of serialize."""
    if isinstance(data, dict):
        if set(data) != {"schedule", "config"} or data["schedule"] not in _SCHEDULES \
                or not isinstance(data["config"], dict):
            raise ValueError(f"invalid learning-rate schedule {data!r}")
        return _SCHEDULES[data["schedule"]](**data["config"])
    return float(data)
