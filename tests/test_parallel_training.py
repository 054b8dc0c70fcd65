"""Training a batch in shards on several threads.

A batch runs in shards whose number depends on the batch size and the
machine (nncore._plans.TRAINING_SHARDS), never on the thread count; the
shards' gradients are added in a fixed order.  So:

- seeded training gives the same bits with 1, 2 or more threads;
- it equals training in one shard up to summation order (float64: 1e-12);
- BatchNormalization normalizes with the statistics of the whole batch;
- dropout and augmentation draw by (seed, step, sample index).
"""
import hashlib

import numpy as np
import pytest

import nncore
from nncore import _plans


def digest(net):
    h = hashlib.sha256()
    for w in net.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def mlp(dtype, seed=3):
    return nncore.Network([nncore.Dense(32, activation="relu"), nncore.Dropout(0.2),
                           nncore.BatchNormalization(), nncore.Dense(16), nncore.ReLU(),
                           nncore.Dense(4)], dtype=dtype, seed=seed)


def cnn(dtype, seed=5):
    return nncore.Network([nncore.RandomFlip("horizontal"),
                           nncore.Conv2D(4, 3, padding="same", activation="relu"),
                           nncore.MaxPool2D(2), nncore.BatchNormalization(),
                           nncore.Conv2D(5, 3), nncore.ReLU(), nncore.Flatten(),
                           nncore.Dropout(0.3), nncore.Dense(3)], dtype=dtype, seed=seed)


def data(kind, n=200, seed=1):
    rng = np.random.default_rng(seed)
    shape, classes = ((12,), 4) if kind == "mlp" else ((8, 8, 2), 3)
    return (rng.standard_normal((n,) + shape).astype(np.float32) * 2 + 0.5,
            rng.integers(0, classes, n))


def trained(kind, dtype, optimizer, threads, batch_size=64, epochs=2):
    x, y = data(kind)
    net = (mlp if kind == "mlp" else cnn)(dtype)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=OPTIMIZERS[optimizer]())
    with nncore.threads(threads):
        history = net.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return net, history


# optimizers whose step each worker applies to the pieces of the gradients
# it adds up (piecewise), and those whose step waits for whole arrays (norms)
OPTIMIZERS = {
    "sgd": lambda: "sgd",
    "adam": lambda: "adam",
    "nesterov": lambda: nncore.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: nncore.optimizers.RMSprop(0.01, momentum=0.5),
    "adagrad": lambda: nncore.optimizers.Adagrad(0.05),
    "amsgrad, clipnorm": lambda: nncore.optimizers.Adam(0.01, amsgrad=True, clipnorm=0.5),
    "sgd, global_clipnorm": lambda: nncore.optimizers.SGD(0.05, global_clipnorm=0.5),
}


@pytest.fixture
def shards(monkeypatch):
    """Set how many shards a batch may run in (the machine's core count by
    default) for the plans made afterwards, and let the small networks here
    run in shards of 16 samples."""
    monkeypatch.setattr(_plans, "SHARD_WORK", 0)

    def set_shards(count):
        monkeypatch.setattr(_plans, "TRAINING_SHARDS", count)
    return set_shards


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_the_thread_count_does_not_change_a_bit(kind, optimizer, dtype, shards):
    shards(4)
    digests = {threads: digest(trained(kind, dtype, optimizer, threads)[0])
               for threads in (1, 2, 3)}
    assert len(set(digests.values())) == 1, digests


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_shards_equal_one_shard_up_to_summation_order(kind, optimizer, shards):
    shards(1)
    whole, whole_history = trained(kind, "float64", optimizer, threads=1)
    shards(4)
    sharded, sharded_history = trained(kind, "float64", optimizer, threads=2)
    assert digest(whole) != digest(sharded)     # the shards did run
    for a, b in zip(whole.get_weights(), sharded.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.abs(a).max())
    np.testing.assert_allclose(sharded_history.history["loss"],
                               whole_history.history["loss"], rtol=1e-12)


def test_a_batch_runs_in_shards_set_by_its_size_and_the_machine_only(shards):
    shards(4)
    net = mlp("float32").use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data("mlp")
    net.fit(x[:16], y[:16], epochs=1, verbose=0)
    plan = net.plans._train_plan
    counts = {n: plan.shard_count(n) for n in (1, 16, 31, 32, 48, 64, 1000)}
    assert counts == {1: 1, 16: 1, 31: 1, 32: 2, 48: 3, 64: 4, 1000: 4}
    with nncore.threads(1):
        assert plan.shard_count(1000) == 4


def test_a_shard_has_enough_work_to_pay_for_itself():
    # at least 16 samples and 2^25 multiply-adds (3x the forward's)
    mlp = nncore.Network([nncore.Dense(256), nncore.ReLU(), nncore.Dense(128),
                          nncore.Dense(10)], input_shape=(784,)).build()
    macs = 784 * 256 + 256 * 128 + 128 * 10
    assert _plans.forward_multiply_adds(mlp.layers) == macs
    assert _plans.min_shard_rows(mlp.layers) == -(-(1 << 25) // (3 * macs)) == 48
    cnn = nncore.Network([nncore.Conv2D(32, 3), nncore.MaxPool2D(2), nncore.Conv2D(64, 3),
                          nncore.Flatten(), nncore.Dense(10)], input_shape=(28, 28, 1)).build()
    macs = 26 * 26 * 9 * 32 + 11 * 11 * 288 * 64 + 7744 * 10
    assert _plans.forward_multiply_adds(cnn.layers) == macs
    assert _plans.min_shard_rows(cnn.layers) == 16


def test_batch_normalization_uses_the_statistics_of_the_whole_batch(shards):
    # the shards hold samples of very different scale: per-shard statistics
    # would give other gradients than the whole batch's
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (32, 6)), rng.normal(5, 10, (32, 6))])
    y = rng.normal(size=(64, 3))
    grads = {}
    for count in (1, 2):
        shards(count)
        net = nncore.Network([nncore.Dense(8), nncore.BatchNormalization(), nncore.Dense(3)],
                             dtype="float64", seed=2).use("mse")
        with nncore.threads(2):
            grads[count] = net.gradients(x, y)
    for whole, sharded in zip(grads[1], grads[2]):
        np.testing.assert_allclose(sharded, whole, rtol=1e-12, atol=1e-14)


def test_per_shard_statistics_would_be_caught(shards):
    # the comparison above can fail: normalizing each half on its own
    # statistics changes the gradients far beyond 1e-12
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (32, 6)), rng.normal(5, 10, (32, 6))])
    y = rng.normal(size=(64, 3))
    shards(1)
    net = nncore.Network([nncore.Dense(8), nncore.BatchNormalization(), nncore.Dense(3)],
                         dtype="float64", seed=2).use("mse")
    whole = net.gradients(x, y)
    halves = [net.gradients(x[h], y[h]) for h in (slice(0, 32), slice(32, 64))]
    per_shard = [(a + b) / 2 for a, b in zip(*halves)]
    assert max(np.abs(p - w).max() for p, w in zip(per_shard, whole)) > 1e-3


def test_dropout_draws_by_sample_index_not_by_shard(shards):
    # a sample's dropout mask is the same whether its batch runs in 1 or 4 shards
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10))
    masks = {}
    for count in (1, 4):
        shards(count)
        net = nncore.Network([nncore.Dropout(0.5)], dtype="float64", seed=9).use("mse")
        net.gradients(x, np.zeros_like(x))
        plan = net.plans._train_plan
        masks[count] = plan.last_batch(64)[0] != 0
    assert 0.3 < masks[1].mean() < 0.7
    np.testing.assert_array_equal(masks[4], masks[1])


def test_sample_weights_and_penalties_count_once_per_batch(shards):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(96, 5)), rng.normal(size=(96, 2))
    weights = rng.random(96)
    results = {}
    for count in (1, 3):
        shards(count)
        net = nncore.Network([nncore.Dense(7, kernel_regularizer=nncore.regularizers.L2(0.1)),
                              nncore.Dense(2)], dtype="float64", seed=4)
        net.use("mse", optimizer="adam")
        with nncore.threads(2):
            history = net.fit(x, y, sample_weight=weights, epochs=2, batch_size=48,
                              verbose=0)
        results[count] = (net.get_weights(), history.history["loss"])
    for a, b in zip(results[1][0], results[3][0]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(results[3][1], results[1][1], rtol=1e-12)


def test_a_hand_loop_of_gradients_equals_a_sharded_fit(shards):
    shards(2)
    x, y = data("mlp", n=64)
    net = mlp("float64").use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
                             optimizer="sgd")
    twin = net.copy()
    with nncore.threads(2):
        net.fit(x, y, epochs=1, batch_size=64, shuffle=False, verbose=0)
        twin.train_on_batch(x, y)
    assert digest(net) == digest(twin)


def test_the_memory_budget_covers_the_shards_buffers(shards):
    shards(8)
    x = np.zeros((512, 2048), np.float32)
    y = np.zeros((512, 256), np.float32)
    net = nncore.Network([nncore.Dense(256)], seed=0).use("mse")
    net.fit(x[:8], y[:8], epochs=1, verbose=0)    # one shard: fits the budget
    weights = [w.copy() for w in net.get_weights()]
    # 7 more copies of the 2 MiB gradient do not fit in 12 MiB with the batch
    previous = nncore.get_memory_budget()
    nncore.set_memory_budget(12 << 20)
    try:
        with pytest.raises(ValueError, match="training shards"):
            net.fit(x, y, epochs=1, batch_size=512, verbose=0)
    finally:
        nncore.set_memory_budget(previous)
    for before, after in zip(weights, net.get_weights()):
        np.testing.assert_array_equal(after, before)


def test_importing_nncore_leaves_the_environment_and_keeps_the_users_openmp_settings(
        tmp_path):
    import json
    import os
    import subprocess
    import sys
    code = ("import json, os, nncore; from nncore._native import OPENMP_IDLE_SPIN; "
            "print(json.dumps({k: os.environ.get(k) for k in OPENMP_IDLE_SPIN}))")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    if env.get("PYTHONPATH"):          # an in-place build, found from another directory
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in
                                            env["PYTHONPATH"].split(os.pathsep) if p)

    def imported(env):
        # outside the checkout, whose nncore/ may be an unbuilt source tree
        result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)
    assert imported(env) == {"GOMP_SPINCOUNT": None, "KMP_BLOCKTIME": None}
    env["GOMP_SPINCOUNT"] = "123"
    assert imported(env) == {"GOMP_SPINCOUNT": "123", "KMP_BLOCKTIME": None}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_run_apart_with_draw_ids_get_the_batch_draws(dtype):
    """Plan.gradients with draw_ids: the rows of a batch split into two
    calls, each told the rows' positions in the batch, draw the dropout
    masks and augmentations of the whole batch, so their gradients add up to
    the batch's; without the ids the masks differ."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(96, 6, 6, 1)).astype(dtype)
    y = rng.integers(0, 3, 96)
    net = nncore.Network([nncore.RandomFlip("horizontal"), nncore.Flatten(),
                          nncore.Dense(32, activation="relu"), nncore.Dropout(0.5),
                          nncore.Dense(3)], input_shape=(6, 6, 1), dtype=dtype, seed=2)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True))
    generators = [s.copy() for layer in net.layers for s in layer.state]

    def restart():
        for layer_state, saved in zip((s for layer in net.layers for s in layer.state),
                                      generators):
            np.copyto(layer_state, saved)

    from nncore._custom_loops import gradients_and_loss
    whole, loss = gradients_and_loss(net, x, y)
    picked = rng.permutation(96)
    parts, part_losses = [], []
    for rows in (np.sort(picked[:40]), np.sort(picked[40:])):
        restart()
        grads, part_loss = gradients_and_loss(net, x[rows], y[rows], draw_ids=rows)
        parts.append([g * len(rows) / 96 for g in grads])
        part_losses.append(part_loss * len(rows) / 96)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for i, w in enumerate(whole):
        np.testing.assert_allclose(parts[0][i] + parts[1][i], w, rtol=tol,
                                   atol=tol * np.abs(w).max(), err_msg=f"gradient {i}")
    assert abs(sum(part_losses) - loss) <= tol * abs(loss)
    restart()
    rows = np.sort(picked[:40])
    apart, _ = gradients_and_loss(net, x[rows], y[rows])
    restart()
    told, _ = gradients_and_loss(net, x[rows], y[rows], draw_ids=rows)
    assert not np.allclose(apart[0], told[0], rtol=1e-3)
    with pytest.raises(ValueError, match="draw_ids has 3 indices for 40 samples"):
        gradients_and_loss(net, x[rows], y[rows], draw_ids=np.arange(3))
