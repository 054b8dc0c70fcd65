"""ReduceLROnPlateau, TensorBoard (event files read back) and BackupAndRestore
(a fit killed with SIGKILL resumes and ends bit-identical)."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nncore
from nncore import callbacks


class Feed(callbacks.Callback):
    """Feeds a scripted sequence of val_loss values to the callbacks after it."""

    def __init__(self, values, after):
        self.values, self.after = values, after

    def on_train_begin(self, logs=None):
        self.after.set_network(self.network)
        self.after.on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]
        self.after.on_epoch_end(epoch, logs)


def small(optimizer=None):
    net = nncore.Network([nncore.Dense(4, "tanh"), nncore.Dense(1)], input_shape=(3,), seed=0)
    return net.use("mse", optimizer=optimizer or nncore.optimizers.SGD(0.1))


def test_reduce_lr_on_plateau_follows_patience_cooldown_and_min_lr():
    x = np.zeros((4, 3), np.float32)
    y = np.zeros((4, 1), np.float32)
    net = small()
    plateau = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.02,
                                          min_delta=0.0)
    values = [5, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3]
    history = net.fit(x, y, epochs=len(values), verbose=0,
                      callbacks=[Feed(values, plateau)])
    # improved at 0, 1; epochs 2, 3 without: halve at 3; epoch 4 ends the cooldown and
    # counts (as in Keras), 5: halve (0.025); improved at 7; 8, 9: 0.0125 clipped to min_lr
    rates = history.history["learning_rate"]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025,
                                       0.02, 0.02, 0.02])
    assert net.optimizer.learning_rate == 0.02


def test_reduce_lr_on_plateau_lowers_the_rate_of_the_call_when_fit_gives_one():
    # fit(learning_rate=...) is the run's rate: the callback lowers it for the
    # steps that follow and leaves the optimizer's own rate alone
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 1)).astype(np.float32)
    net = small(nncore.optimizers.SGD(0.3))
    plateau = callbacks.ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0.0)
    values = [5, 5, 5, 5]
    history = net.fit(x, y, epochs=len(values), batch_size=4, shuffle=False, verbose=0,
                      learning_rate=0.1, callbacks=[Feed(values, plateau)])
    rates = history.history["learning_rate"]
    np.testing.assert_allclose(rates, [0.1, 0.05, 0.025, 0.0125])
    assert net.optimizer.learning_rate == 0.3
    # the same steps, one fit per epoch at the rate each epoch ran with
    again = small(nncore.optimizers.SGD(0.3))
    for rate in [0.1, 0.1, 0.05, 0.025]:
        again.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0, learning_rate=rate)
    for a, b in zip(net.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_reduce_lr_on_plateau_refuses_bad_arguments_and_schedules():
    with pytest.raises(ValueError, match="factor must be in"):
        callbacks.ReduceLROnPlateau(factor=1.5)
    with pytest.raises(ValueError, match="patience"):
        callbacks.ReduceLROnPlateau(patience=-1)
    with pytest.raises(KeyError, match="val_loss"):
        small().fit(np.zeros((4, 3)), np.zeros((4, 1)), verbose=0,
                    callbacks=[callbacks.ReduceLROnPlateau()])
    net = small(nncore.optimizers.Adam(nncore.schedules.ExponentialDecay(0.1, 10, 0.5)))
    with pytest.raises(TypeError, match="constant learning rate"):
        net.fit(np.zeros((4, 3)), np.zeros((4, 1)), verbose=0,
                callbacks=[callbacks.ReduceLROnPlateau(monitor="loss")])


def read_events(log_dir):
    """{tag: [(step, scalar value or HistogramProto)]} from the event files of log_dir
    (TFRecord framing: length, its CRC, an Event protobuf, its CRC)."""
    from tensorboardX.proto.event_pb2 import Event
    found = {}
    for name in sorted(os.listdir(log_dir)):
        data = (log_dir / name).read_bytes()
        offset = 0
        while offset < len(data):
            length = int.from_bytes(data[offset:offset + 8], "little")
            event = Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                item = value.simple_value if kind == "simple_value" else value.histo
                found.setdefault(value.tag, []).append((event.step, item))
    return found


def test_tensorboard_writes_scalars_and_histograms(tmp_path):
    pytest.importorskip("tensorboardX")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)), rng.normal(size=(32, 1))
    net = small()
    net.use("mse", optimizer=nncore.optimizers.SGD(0.05), metrics=["mae"])
    history = net.fit(x, y, epochs=3, verbose=0, validation_split=0.25,
                      callbacks=[callbacks.TensorBoard(tmp_path, histogram_freq=1)])
    events = read_events(tmp_path)
    for key in ("loss", "mae", "val_loss", "val_mae"):
        assert [step for step, _ in events[key]] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in events[key]], history.history[key],
                                   rtol=1e-6)
    assert [v for _, v in events["learning_rate"]] == pytest.approx([0.05] * 3)
    tags = sorted(t for t in events if t.startswith("layer"))
    assert tags == ["layer0/param0", "layer0/param1", "layer1/param0", "layer1/param1"]
    last = events["layer0/param0"][-1][1]
    assert last.num == 12 and last.min == pytest.approx(float(net.layers[0].W.min()))


def test_tensorboard_without_tensorboardx_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match="pip install 'nncore\\[tensorboard\\]'"):
        small().fit(np.zeros((4, 3)), np.zeros((4, 1)), verbose=0,
                    callbacks=[callbacks.TensorBoard(tmp_path)])


SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import nncore
    from nncore import callbacks

    class Kill(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if self.network.training_optimizer.iterations == int(os.environ["KILL_AT"]):
                os.kill(os.getpid(), signal.SIGKILL)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 6)).astype("float32")
    y = rng.integers(0, 3, 100)
    net = nncore.Network([nncore.Dense(16, "relu"), nncore.Dropout(0.3), nncore.Dense(3)],
                         input_shape=(6,), seed=1)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=nncore.optimizers.Adam(nncore.schedules.ExponentialDecay(0.01, 10, 0.9)))
    backup = sys.argv[2]
    extra = [callbacks.BackupAndRestore(backup)] if backup != "-" else []
    history = net.fit(x, y, epochs=6, batch_size=16, verbose=0, callbacks=extra + [Kill()])
    np.savez(sys.argv[1], *net.get_weights(), loss=history.history["loss"][-1],
             iterations=net.optimizer.iterations)
""")


def run(script, out, backup, kill_at):
    env = dict(os.environ, KILL_AT=str(kill_at))
    return subprocess.run([sys.executable, str(script), str(out), str(backup)], env=env,
                          capture_output=True, text=True, timeout=300)


def test_backup_and_restore_resumes_a_killed_fit_bit_identically(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    reference = run(script, tmp_path / "reference.npz", "-", -1)
    assert reference.returncode == 0, reference.stderr
    backup = tmp_path / "backup"
    # 7 steps per epoch: killed in epoch 3 (after 2 complete epochs), then in epoch 5
    killed = run(script, tmp_path / "never.npz", backup, 17)
    assert killed.returncode == -signal.SIGKILL
    assert sorted(os.listdir(backup)) == ["epoch-2.nncore"]
    killed = run(script, tmp_path / "never.npz", backup, 31)
    assert killed.returncode == -signal.SIGKILL
    assert sorted(os.listdir(backup)) == ["epoch-4.nncore"]
    resumed = run(script, tmp_path / "resumed.npz", backup, -1)
    assert resumed.returncode == 0, resumed.stderr
    assert os.listdir(backup) == []               # deleted once fit completed
    a, b = np.load(tmp_path / "reference.npz"), np.load(tmp_path / "resumed.npz")
    assert a.files == b.files
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    assert int(b["iterations"]) == 42


def test_backup_and_restore_after_an_exception_in_process(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))

    class Crash(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("crash")

    reference = small(nncore.optimizers.Adam(0.01))
    reference.fit(x, y, epochs=5, verbose=0)
    net = small(nncore.optimizers.Adam(0.01))
    backup = callbacks.BackupAndRestore(tmp_path / "b", delete_checkpoint=False)
    with pytest.raises(RuntimeError, match="crash"):
        net.fit(x, y, epochs=5, verbose=0, callbacks=[backup, Crash()])
    fresh = small(nncore.optimizers.Adam(0.01))      # as a new process would build it
    history = fresh.fit(x, y, epochs=5, verbose=0, callbacks=[backup])
    assert backup.resumed_epochs == 3 and history.epoch == [3, 4]
    for p, q in zip(fresh.params, reference.params):
        np.testing.assert_array_equal(p, q)
    assert os.listdir(tmp_path / "b") == ["epoch-5.nncore"]
