"""Every optimizer's native update against a NumPy reference over several steps."""
import numpy as np
import pytest

from nncore import optimizers, schedules
from nncore._native.optim import apply_update

STEPS = 6
LR = 0.05


def tolerance(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


def run_native(optimizer, dtype, start, grad_steps, rates):
    params = [p.astype(dtype) for p in start]
    grads = [np.zeros_like(p) for p in params]
    optimizer.build(params, dtype)
    for step_grads, rate in zip(grad_steps, rates):
        for g, new in zip(grads, step_grads):
            np.copyto(g, new)
        apply_update(optimizer.updater, params, grads, rate)
    assert optimizer.iterations == len(rates)
    return params


def clip_all(grads, clipvalue=None, clipnorm=None, global_clipnorm=None):
    grads = [g.astype(np.float64) for g in grads]
    if global_clipnorm:
        norm = np.sqrt(sum((g ** 2).sum() for g in grads))
        if norm > global_clipnorm:
            grads = [g * global_clipnorm / norm for g in grads]
    if clipnorm:
        grads = [g * min(1.0, clipnorm / np.linalg.norm(g)) for g in grads]
    if clipvalue:
        grads = [np.clip(g, -clipvalue, clipvalue) for g in grads]
    return grads


def ref_sgd(p, g, s, lr, t, momentum=0.0, nesterov=False, weight_decay=0.0):
    p = p - lr * weight_decay * p
    if momentum == 0:
        return p - lr * g
    v = s.get("v", np.zeros_like(p))
    v = momentum * v - lr * g
    s["v"] = v
    return p + (momentum * v - lr * g if nesterov else v)


def ref_adam(p, g, s, lr, t, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
             weight_decay=0.0):
    p = p - lr * weight_decay * p
    m = s["m"] = beta_1 * s.get("m", 0) + (1 - beta_1) * g
    v = s["v"] = beta_2 * s.get("v", 0) + (1 - beta_2) * g * g
    if amsgrad:
        v = s["vhat"] = np.maximum(s.get("vhat", 0), v)
    m_hat = m / (1 - beta_1 ** t)
    v_hat = v / (1 - beta_2 ** t)
    # Keras' epsilon placement: epsilon added to sqrt(v) before bias correction
    return p - lr * m_hat / (np.sqrt(v_hat) + epsilon / np.sqrt(1 - beta_2 ** t))


def ref_rmsprop(p, g, s, lr, t, rho=0.9, momentum=0.0, epsilon=1e-7, weight_decay=0.0):
    p = p - lr * weight_decay * p
    ms = s["ms"] = rho * s.get("ms", 0) + (1 - rho) * g * g
    step = lr * g / np.sqrt(ms + epsilon)
    if momentum:
        step = s["vel"] = momentum * s.get("vel", 0) + step
    return p - step


def ref_adagrad(p, g, s, lr, t, initial_accumulator_value=0.1, epsilon=1e-7,
                weight_decay=0.0):
    p = p - lr * weight_decay * p
    acc = s["acc"] = s.get("acc", initial_accumulator_value) + g * g
    return p - lr * g / np.sqrt(acc + epsilon)


CASES = [
    (optimizers.SGD, ref_sgd, {}),
    (optimizers.SGD, ref_sgd, {"momentum": 0.9}),
    (optimizers.SGD, ref_sgd, {"momentum": 0.8, "nesterov": True}),
    (optimizers.SGD, ref_sgd, {"momentum": 0.5, "weight_decay": 0.1}),
    (optimizers.Adam, ref_adam, {}),
    (optimizers.Adam, ref_adam, {"amsgrad": True, "beta_1": 0.8, "beta_2": 0.99}),
    (optimizers.AdamW, ref_adam, {"weight_decay": 0.004}),
    (optimizers.RMSprop, ref_rmsprop, {}),
    (optimizers.RMSprop, ref_rmsprop, {"momentum": 0.9, "rho": 0.8}),
    (optimizers.Adagrad, ref_adagrad, {"initial_accumulator_value": 0.2}),
]
CLIPS = [{}, {"clipvalue": 0.3}, {"clipnorm": 0.5}, {"global_clipnorm": 0.7},
         {"clipvalue": 0.2, "global_clipnorm": 0.9}]


def problem(seed=0):
    rng = np.random.default_rng(seed)
    start = [rng.normal(size=(3, 4)), rng.normal(size=4)]
    grad_steps = [[rng.normal(size=p.shape) for p in start] for _ in range(STEPS)]
    rates = LR * (1 + np.arange(STEPS) / 10)          # a changing rate per step
    return start, grad_steps, rates


@pytest.mark.parametrize("cls,reference,hyper", CASES,
                         ids=[f"{c.__name__}-{h}" for c, _, h in CASES])
@pytest.mark.parametrize("clip", CLIPS, ids=[str(c) for c in CLIPS])
def test_update_matches_numpy(cls, reference, hyper, clip, dtype):
    start, grad_steps, rates = problem()
    got = run_native(cls(**hyper, **clip), dtype, start, grad_steps, rates)
    # the reference in float64 from the same rounded start values
    params = [p.astype(dtype).astype(np.float64) for p in start]
    states = [{} for _ in params]
    for t, (step_grads, rate) in enumerate(zip(grad_steps, rates), start=1):
        clipped = clip_all([g.astype(dtype) for g in step_grads], **clip)
        params = [reference(p, g, s, rate, t, **hyper)
                  for p, g, s in zip(params, clipped, states)]
    for g, want in zip(got, params):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, want, **tolerance(dtype))


def test_plain_sgd_is_fused_others_are_not():
    params = [np.zeros(3, np.float32)]
    for optimizer, fused in [(optimizers.SGD(0.1), True),
                             (optimizers.SGD(0.1, momentum=0.9), False),
                             (optimizers.SGD(0.1, clipnorm=1.0), False),
                             (optimizers.SGD(0.1, weight_decay=0.1), False),
                             (optimizers.Adam(), False)]:
        optimizer.build(params, np.float32)
        assert optimizer.updater.fusable == fused


def test_names_and_bad_hyper_parameters():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert isinstance(optimizers.get("AdamW"), optimizers.AdamW)
    assert isinstance(optimizers.get("rmsprop"), optimizers.RMSprop)
    assert isinstance(optimizers.get("adagrad"), optimizers.Adagrad)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get("adamax")
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Adam(beta_1=1.0)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=-0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.Adam(learning_rate=0)
    with pytest.raises(ValueError, match="not both"):
        optimizers.SGD(clipnorm=1, global_clipnorm=1)


def test_schedules_match_formulas():
    steps = np.arange(0, 50)
    exp = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    np.testing.assert_allclose(exp.rates(0, 50), 0.1 * 0.5 ** (steps / 10), rtol=1e-14)
    stair = schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)
    np.testing.assert_allclose(stair.rates(0, 50), 0.1 * 0.5 ** (steps // 10), rtol=1e-14)
    step = schedules.StepDecay(0.2, step_size=7, factor=0.1)
    assert step(6) == pytest.approx(0.2) and step(7) == pytest.approx(0.02)
    assert step(14) == pytest.approx(0.002)
    cos = schedules.CosineDecay(1.0, decay_steps=20, alpha=0.1)
    assert cos(0) == pytest.approx(1.0)
    assert cos(10) == pytest.approx(0.1 + 0.9 * 0.5)
    assert cos(20) == pytest.approx(0.1) and cos(45) == pytest.approx(0.1)
    # rates(first, count) agrees with calling the schedule step by step
    np.testing.assert_allclose(cos.rates(13, 5), [cos(s) for s in range(13, 18)])


def test_optimizer_rates_from_schedule_or_callable():
    opt = optimizers.SGD(schedules.StepDecay(0.1, 2, 0.5))
    np.testing.assert_allclose(opt.learning_rates(1, 4), [0.1, 0.05, 0.05, 0.025])
    opt = optimizers.Adam(lambda step: 1.0 / (step + 1))
    np.testing.assert_allclose(opt.learning_rates(2, 3), [1 / 3, 1 / 4, 1 / 5])


@pytest.mark.parametrize("make", [
    lambda: optimizers.Adam(schedules.ExponentialDecay(0.01, 3, 0.5), amsgrad=True),
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True, global_clipnorm=0.5),
    lambda: optimizers.RMSprop(0.01, momentum=0.5), lambda: optimizers.Adagrad(0.1),
    lambda: optimizers.AdamW(0.01, clipvalue=0.3)])
def test_state_protocol_resumes_exactly(make):
    # config + state saved after 3 steps, restored into a fresh optimizer
    # before build: the next 3 steps match an uninterrupted run bit for bit
    start, grad_steps, _ = problem(1)
    first = make()
    params = [p.astype(np.float32) for p in start]
    grads = [np.zeros_like(p) for p in params]
    first.build(params, np.float32)

    def steps(optimizer, params, chunk):
        for step_grads in chunk:
            for g, new in zip(grads, step_grads):
                np.copyto(g, new)
            rate = optimizer.learning_rate_at(optimizer.iterations)
            apply_update(optimizer.updater, params, grads, rate)

    steps(first, params, grad_steps[:3])
    resumed_params = [p.copy() for p in params]
    second = type(first).from_config(first.get_config())
    second.set_state(first.get_state())
    second.build(resumed_params, np.float32)
    assert second.iterations == 3
    steps(first, params, grad_steps[3:])
    steps(second, resumed_params, grad_steps[3:])
    for a, b in zip(params, resumed_params):
        assert a.tobytes() == b.tobytes()
    with pytest.raises(ValueError, match="state"):
        second.set_state(first.get_state()[:-1])


def test_unsavable_learning_rate_is_reported():
    with pytest.raises(ValueError, match="cannot save"):
        optimizers.SGD(lambda step: 0.1).get_config()
