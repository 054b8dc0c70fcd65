"""Optimizers.  Each owns a native in-place update kernel (csrc/optim.pyx).

Hyper-parameters are named and defined as in Keras 3.  `weight_decay` is
decoupled: every step first does `param -= learning_rate * weight_decay * param`.
Gradients can be clipped before the step: `clipvalue` limits every element,
`clipnorm` the L2 norm of each parameter's gradient, `global_clipnorm` the
norm of all gradients together.  `learning_rate` is a number or a schedule
(`nncore.schedules`, or any callable of the step number).
"""
from __future__ import annotations

from typing import Callable, List, Optional, Union

import numpy as np

from . import schedules
from ._native.optim import NativeUpdater, OptimUpdater, SGDUpdater, apply_update
from .errors import unknown_name
from .registry import auto_register

LearningRate = Union[float, Callable[[int], float]]
Updater = NativeUpdater


def _check(value, what: str, low: float = 0.0, high: Optional[float] = None,
           low_open: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {value!r}") from None
    if (not np.isfinite(number) or number < low or (low_open and number == low)
            or (high is not None and number >= high)):
        bounds = f"{'>' if low_open else '>='} {low:g}" + (f" and < {high:g}" if high else "")
        raise ValueError(f"{what} must be {bounds}, got {value!r}")
    return number


class Optimizer:
    """Base class.  `build(params, dtype)` creates the per-parameter state and
    the native updater; `learning_rate_at(step)` gives the rate of a step
    (0-based count of steps taken).

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule
        The step size (positive), or a schedule of it (a callable of the step).
    weight_decay : float, default 0.0
        Decoupled weight decay: param -= lr * weight_decay * param each step.
    clipnorm : float, optional
        Clip each parameter's gradient to this L2 norm.
    clipvalue : float, optional
        Clip each gradient value to [-clipvalue, clipvalue].
    global_clipnorm : float, optional
        Clip all gradients together to this L2 norm (not with clipnorm).

    Raises
    ------
    ValueError
        If an argument is out of range, or both clipnorm and global_clipnorm
        are given.

    Examples
    --------
    The optimizers are subclasses; one steps arrays in place:

    >>> import numpy as np, nncore
    >>> w = np.array([1.0, -2.0])
    >>> opt = nncore.optimizers.SGD(0.1, clipvalue=1.0)
    >>> opt.apply_gradients([np.array([0.5, 3.0])], [w])
    >>> w
    array([ 0.95, -2.1 ])
    """

    #: names of the state arrays kept per parameter (subclasses)
    slots: tuple = ()
    #: name of the native update kernel (subclasses using OptimUpdater)
    kernel: str
    #: get_state() arrays given to set_state before build (installed by build)
    _pending_state: Optional[list]

    def __init_subclass__(cls, **kwargs):
        # optimizers defined in nncore are savable by class name
        super().__init_subclass__(**kwargs)
        auto_register("optimizer", cls)

    def __init__(self, learning_rate: LearningRate, weight_decay: float = 0.0,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None):
        name = type(self).__name__
        self.learning_rate: LearningRate
        if callable(learning_rate):
            self.learning_rate = learning_rate
        else:
            self.learning_rate = _check(learning_rate, f"{name}: learning_rate", low_open=True)
        self.weight_decay = _check(weight_decay, f"{name}: weight_decay")
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(f"{name}: give clipnorm or global_clipnorm, not both")
        self.clipnorm = None if clipnorm is None else _check(clipnorm, f"{name}: clipnorm",
                                                             low_open=True)
        self.clipvalue = None if clipvalue is None else _check(clipvalue, f"{name}: clipvalue",
                                                               low_open=True)
        self.global_clipnorm = (None if global_clipnorm is None else
                                _check(global_clipnorm, f"{name}: global_clipnorm",
                                       low_open=True))
        self._updater: Optional[Updater] = None
        self._params: List[np.ndarray] = []    # the arrays the last build was for
        self.state: List[tuple] = []

    # ------------------------------------------------------------ learning rate
    def learning_rate_at(self, step: int) -> float:
        rate = self.learning_rate
        return float(rate(step)) if callable(rate) else rate

    def learning_rates(self, first_step: int, count: int, rate: LearningRate = None
                       ) -> np.ndarray:
        """The rates of steps first_step .. first_step + count - 1 (float64)
        from `rate` (a number or schedule; None: the optimizer's own);
        ValueError naming the step when a schedule gives a rate that is not
        a positive finite number."""
        if rate is None:
            rate = self.learning_rate
        if isinstance(rate, schedules.LearningRateSchedule):
            rates = np.asarray(rate.rates(first_step, count), dtype=np.float64)
        elif callable(rate):
            rates = np.array([float(rate(s)) for s in range(first_step, first_step + count)])
        else:
            rates = np.full(count, rate, dtype=np.float64)
        bad = ~(np.isfinite(rates) & (rates > 0))
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"{type(self).__name__}: the learning rate (or schedule) "
                             f"gave {float(rates[k])!r} for step {first_step + k}; rates "
                             f"must be positive finite numbers")
        return rates

    # ------------------------------------------------------------------- native
    def hyper(self) -> dict:
        """Values for the native config (subclasses add theirs)."""
        return {"weight_decay": self.weight_decay, "clipnorm": self.clipnorm or 0.0,
                "clipvalue": self.clipvalue or 0.0,
                "global_clipnorm": self.global_clipnorm or 0.0}

    def state_for(self, param: np.ndarray) -> tuple:
        """The state arrays of one parameter (zeros shaped like it, committed
        to memory when first written)."""
        return tuple(np.zeros(param.shape, param.dtype) for _ in self.slots)

    def build(self, params: list, dtype) -> None:
        """Create zeroed per-parameter state for these arrays and the native
        updater (state set with `set_state` before build is installed now)."""
        self.state = [self.state_for(p) for p in params]
        self._updater = self.native(np.dtype(dtype), params)
        self._params = list(params)
        pending, self._pending_state = getattr(self, "_pending_state", None), None
        if pending is not None:
            self.load_state(pending)

    def built_for(self, params: list) -> bool:
        """True when the last build was for exactly these arrays."""
        return (self._updater is not None and len(params) == len(self._params)
                and all(a is b for a, b in zip(params, self._params)))

    def native(self, dtype, params: list) -> Updater:
        return OptimUpdater(self.kernel, np.dtype(dtype), list(params), self.state,
                            self.hyper())

    # ------------------------------------------------------------------ saving
    # The saving protocol: get_config() gives the constructor arguments as
    # JSON values, get_state() the arrays that determine all future updates
    # (every state array, then the step count as an int64 array of one
    # element), set_state(arrays) restores them (at build when not built).
    def get_config(self) -> dict:
        config = {"learning_rate": schedules.serialize(self.learning_rate),
                  "weight_decay": self.weight_decay}
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Optimizer":
        config = dict(config)
        config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def get_state(self) -> list:
        pending = getattr(self, "_pending_state", None)
        if pending is not None:
            return [a.copy() for a in pending]
        if self._updater is None:
            return []
        return ([a.copy() for row in self.state for a in row]
                + [np.array([self.iterations], np.int64)])

    def set_state(self, arrays: list, copy: bool = True) -> None:
        """Install `get_state()` arrays (copied; with copy=False the caller
        hands them over); before `build`, they wait for it."""
        arrays = [np.array(a, copy=True) for a in arrays] if copy else list(arrays)
        if self._updater is None:
            self._pending_state = arrays
        else:
            self.load_state(arrays)

    def load_state(self, arrays: list) -> None:
        """Copy get_state() arrays into the built optimizer (in place: the
        native updater keeps the state arrays' addresses)."""
        targets = self.check_state(arrays)
        for target, value in zip(targets, arrays):
            np.copyto(target, value, casting="same_kind")
        self.updater.step = int(np.asarray(arrays[-1])[0])

    def check_state(self, arrays: list) -> list:
        """ValueError unless `arrays` fit the built optimizer's state; the
        state arrays they go to."""
        name = type(self).__name__
        targets = [a for row in self.state for a in row]
        if len(arrays) != len(targets) + 1:
            raise ValueError(f"{name}: expected {len(targets) + 1} state arrays, "
                             f"received {len(arrays)}")
        for target, value in zip(targets, arrays):
            if np.shape(value) != target.shape:
                raise ValueError(f"{name}: state array of shape {np.shape(value)} for a "
                                 f"parameter of shape {target.shape}")
        step = np.asarray(arrays[-1])
        if step.shape != (1,) or step.dtype.kind not in "iu" or step[0] < 0:
            raise ValueError(f"{name}: the last state array must be the step count")
        return targets

    def apply_gradients(self, grads, params=None) -> None:
        """One optimizer step: `grads` (arrays shaped like `params`, e.g. from
        `Network.gradients`, or Keras-style (gradient, param) pairs) update
        `params` in place with the learning rate of the next step.  Without
        `params`, the arrays the optimizer was built for (by fit, or
        `Network.gradients`).  Runs the native update kernel fit runs."""
        name = type(self).__name__
        grads = list(grads)
        if params is None and grads and all(isinstance(g, tuple) and len(g) == 2
                                            for g in grads):
            grads, params = [g for g, _ in grads], [p for _, p in grads]
        if params is None:
            if self._updater is None:
                raise RuntimeError(f"{name}.apply_gradients: pass params=, or fit the "
                                   f"network (or call network.gradients) first")
            params = self._params
        params = list(params)
        if len(grads) != len(params):
            raise ValueError(f"{name}.apply_gradients: {len(grads)} gradients for "
                             f"{len(params)} parameters")
        for i, (g, p) in enumerate(zip(grads, params)):
            if not (isinstance(p, np.ndarray) and p.dtype in (np.float32, np.float64)
                    and p.dtype == params[0].dtype and p.flags.c_contiguous
                    and p.flags.writeable):
                raise TypeError(f"{name}.apply_gradients: parameter {i} must be a writable "
                                f"C-contiguous float32 or float64 array of the dtype of "
                                f"parameter 0")
            if np.shape(g) != p.shape:
                raise ValueError(f"{name}.apply_gradients: gradient {i} has shape "
                                 f"{np.shape(g)}, its parameter {p.shape}")
        grads = [np.ascontiguousarray(g, dtype=p.dtype) for g, p in zip(grads, params)]
        for i, g in enumerate(grads):
            if not np.isfinite(g).all():
                raise ValueError(f"{name}.apply_gradients: gradient {i} is not finite")
        if not self.built_for(params):
            self.build(params, params[0].dtype)
        rate = float(self.learning_rates(self.iterations, 1)[0])
        apply_update(self.updater, params, grads, rate)

    @property
    def updater(self) -> Updater:
        if self._updater is None:
            raise RuntimeError(f"{type(self).__name__}: build the optimizer first")
        return self._updater

    @property
    def iterations(self) -> int:
        """Number of update steps taken (including those of a loaded state
        that the next build installs)."""
        pending = getattr(self, "_pending_state", None)
        if self._updater is None:
            return int(pending[-1][0]) if pending else 0
        return int(self._updater.step)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate!r})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum:
    velocity = momentum * velocity - lr * g; param += velocity (Nesterov:
    param += momentum * velocity - lr * g).  Plain SGD (no momentum, weight
    decay or clipping) is fused into the backward pass.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.01
        The step size, or a schedule of it (see `nncore.schedules`).
    momentum : float, default 0.0
        In [0, 1).
    nesterov : bool, default False
        Nesterov momentum.
    weight_decay : float, default 0.0
        Decoupled weight decay.
    **clipping
        ``clipnorm``, ``clipvalue`` or ``global_clipnorm``.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> import nncore
    >>> optimizer = nncore.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    >>> net = nncore.Network([nncore.Dense(1)], input_shape=(3,))
    >>> net.use("mse", optimizer=optimizer)
    Network(...)
    """

    kernel = "sgd"

    def __init__(self, learning_rate: LearningRate = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, **clipping):
        super().__init__(learning_rate, weight_decay, **clipping)
        self.momentum = _check(momentum, "SGD: momentum", 0.0, 1.0)
        self.nesterov = bool(nesterov)

    @property
    def slots(self):
        return ("velocity",) if self.momentum > 0 else ()

    def hyper(self) -> dict:
        return dict(super().hyper(), momentum=self.momentum, nesterov=self.nesterov)

    def get_config(self) -> dict:
        return dict(super().get_config(), momentum=self.momentum, nesterov=self.nesterov)

    @property
    def plain(self) -> bool:
        return (self.momentum == 0 and self.weight_decay == 0 and self.clipnorm is None
                and self.clipvalue is None and self.global_clipnorm is None)

    def built_for(self, params: list) -> bool:
        """True when the last build was for exactly these arrays."""
        return (self._updater is not None and len(params) == len(self._params)
                and all(a is b for a, b in zip(params, self._params)))

    def native(self, dtype, params: list) -> Updater:
        if self.plain:
            return SGDUpdater(np.dtype(dtype))
        return super().native(dtype, params)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with Keras' epsilon placement:
    param -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon).

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
        The step size, or a schedule of it.
    beta_1, beta_2 : float, default 0.9 and 0.999
        The decay rates of the first and second moment estimates, in [0, 1).
    epsilon : float, default 1e-7
        Added to the denominator.
    amsgrad : bool, default False
        Use the maximum of the second moments seen so far.
    weight_decay : float, default 0.0
        Decoupled weight decay (`AdamW` defaults it to 0.004).
    **clipping
        ``clipnorm``, ``clipvalue`` or ``global_clipnorm``.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> import nncore
    >>> net = nncore.Network([nncore.Dense(1)], input_shape=(3,))
    >>> net.use("mse", optimizer=nncore.optimizers.Adam(learning_rate=0.01))
    Network(...)
    """

    kernel = "adam"

    def __init__(self, learning_rate: LearningRate = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False,
                 weight_decay: float = 0.0, **clipping):
        super().__init__(learning_rate, weight_decay, **clipping)
        name = type(self).__name__
        self.beta_1 = _check(beta_1, f"{name}: beta_1", 0.0, 1.0)
        self.beta_2 = _check(beta_2, f"{name}: beta_2", 0.0, 1.0)
        self.epsilon = _check(epsilon, f"{name}: epsilon")
        self.amsgrad = bool(amsgrad)

    @property
    def slots(self):
        return ("m", "v", "vhat") if self.amsgrad else ("m", "v")

    def hyper(self) -> dict:
        return dict(super().hyper(), beta_1=self.beta_1, beta_2=self.beta_2,
                    epsilon=self.epsilon, amsgrad=self.amsgrad)

    def get_config(self) -> dict:
        return dict(super().get_config(), beta_1=self.beta_1, beta_2=self.beta_2,
                    epsilon=self.epsilon, amsgrad=self.amsgrad)


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004, as in Keras).

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
        The step size, or a schedule of it (a callable of the step).
    weight_decay : float, default 0.004
        Decoupled weight decay: param -= lr * weight_decay * param each step.
    beta_1, beta_2 : float, default 0.9 and 0.999
        The decay rates of the first and second moment estimates, in [0, 1).
    epsilon : float, default 1e-7
        Added to the denominator.
    amsgrad : bool, default False
        Use the maximum of the second moments seen so far.
    **clipping
        ``clipnorm``, ``clipvalue`` or ``global_clipnorm``, as for `Optimizer`.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    With a zero gradient, only the decay acts:

    >>> import numpy as np, nncore
    >>> w = np.array([1.0, -2.0])
    >>> nncore.optimizers.AdamW(0.1, weight_decay=0.1).apply_gradients([np.zeros(2)], [w])
    >>> w
    array([ 0.99, -1.98])
    """

    def __init__(self, learning_rate: LearningRate = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, **clipping):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         **clipping)


class RMSprop(Optimizer):
    """RMSprop: ms = rho * ms + (1 - rho) g^2; step = lr * g / sqrt(ms + epsilon);
    with momentum: velocity = momentum * velocity + step; param -= velocity.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
        The step size, or a schedule of it (a callable of the step).
    rho : float, default 0.9
        The decay rate of the mean square, in [0, 1).
    momentum : float, default 0.0
        The momentum, in [0, 1).
    epsilon : float, default 1e-7
        Added to the mean square.
    weight_decay : float, default 0.0
        Decoupled weight decay: param -= lr * weight_decay * param each step.
    **clipping
        ``clipnorm``, ``clipvalue`` or ``global_clipnorm``, as for `Optimizer`.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> import nncore
    >>> net = nncore.Network([nncore.Dense(1)], input_shape=(3,))
    >>> net.use("mse", optimizer=nncore.optimizers.RMSprop(0.01, momentum=0.5))
    Network(...)
    """

    kernel = "rmsprop"

    def __init__(self, learning_rate: LearningRate = 0.001, rho: float = 0.9,
                 momentum: float = 0.0, epsilon: float = 1e-7, weight_decay: float = 0.0,
                 **clipping):
        super().__init__(learning_rate, weight_decay, **clipping)
        self.rho = _check(rho, "RMSprop: rho", 0.0, 1.0)
        self.momentum = _check(momentum, "RMSprop: momentum", 0.0, 1.0)
        self.epsilon = _check(epsilon, "RMSprop: epsilon")

    @property
    def slots(self):
        return ("mean_square", "velocity") if self.momentum > 0 else ("mean_square",)

    def hyper(self) -> dict:
        return dict(super().hyper(), rho=self.rho, momentum=self.momentum,
                    epsilon=self.epsilon)

    def get_config(self) -> dict:
        return dict(super().get_config(), rho=self.rho, momentum=self.momentum,
                    epsilon=self.epsilon)


class Adagrad(Optimizer):
    """Adagrad: acc += g^2; param -= lr * g / sqrt(acc + epsilon), with the
    accumulator starting at `initial_accumulator_value`.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
        The step size, or a schedule of it (a callable of the step).
    initial_accumulator_value : float, default 0.1
        The accumulator's starting value, >= 0.
    epsilon : float, default 1e-7
        Added to the accumulator.
    weight_decay : float, default 0.0
        Decoupled weight decay: param -= lr * weight_decay * param each step.
    **clipping
        ``clipnorm``, ``clipvalue`` or ``global_clipnorm``, as for `Optimizer`.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> w = np.array([1.0, -2.0])
    >>> nncore.optimizers.Adagrad(0.1).apply_gradients([np.array([0.5, 0.5])], [w])
    >>> np.round(w, 4)
    array([ 0.9155, -2.0845])
    """

    kernel = "adagrad"
    slots = ("accumulator",)

    def __init__(self, learning_rate: LearningRate = 0.001,
                 initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 weight_decay: float = 0.0, **clipping):
        super().__init__(learning_rate, weight_decay, **clipping)
        self.initial_accumulator_value = _check(initial_accumulator_value,
                                                "Adagrad: initial_accumulator_value")
        self.epsilon = _check(epsilon, "Adagrad: epsilon")

    def state_for(self, param: np.ndarray) -> tuple:
        return (np.full_like(param, self.initial_accumulator_value),)

    def hyper(self) -> dict:
        return dict(super().hyper(), epsilon=self.epsilon)

    def get_config(self) -> dict:
        return dict(super().get_config(), epsilon=self.epsilon,
                    initial_accumulator_value=self.initial_accumulator_value)


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop,
            "adagrad": Adagrad}


def get(identifier: Union[str, Optimizer]) -> Optimizer:
    """An optimizer from a name ('sgd', 'adam', ...) or an Optimizer.

    Parameters
    ----------
    identifier : str or Optimizer
        A name (any case; the optimizer with its default arguments), or an
        Optimizer, returned as it is.

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        If the name is unknown.

    Examples
    --------
    >>> import nncore
    >>> nncore.optimizers.get("adam")
    Adam(learning_rate=0.001)
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(unknown_name("optimizer", identifier, _BY_NAME, " or pass an Optimizer"))
