"""Resource limits and the failures found by trying to break nncore: hostile
files and configs are refused before anything large is allocated, and
misuse (shared layer objects, overlapping buffers, huge batch sizes, bad
schedules, huge thread counts) gets a clear error."""
import io
import json
import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nncore
from nncore import ModelFormatError, saving
from nncore.network import loads

IMPORT_PATH = str(Path(nncore.__file__).resolve().parents[1])


@pytest.fixture
def budget():
    """Restores the memory budget a test changes."""
    previous = nncore.get_memory_budget()
    yield
    nncore.set_memory_budget(previous)


def run_capped(code: str, memory: int = 1 << 31, timeout: float = 120) -> str:
    """Run `code` in a fresh Python whose address space is capped at
    `memory` bytes (so a runaway allocation fails fast instead of taking the
    machine); its stdout.  The cap is left off under tools/memcheck.sh (the
    sanitizer reserves a huge address range for itself) and where the
    platform has no such limit."""
    prelude = "" if os.environ.get("NNCORE_MEMCHECK") else f"""
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
except (ImportError, ValueError, OSError):
    pass
"""
    # cwd: `python -c` looks in the working directory first, which must not be
    # a checkout whose nncore/ has no compiled modules
    done = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                          text=True, timeout=timeout, cwd=IMPORT_PATH,
                          env=dict(os.environ, PYTHONPATH=IMPORT_PATH))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# ----------------------------------------------------------- hostile files
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_loading_a_device_is_refused_without_reading_it():
    out = run_capped("""
import nncore
try:
    nncore.load("/dev/zero")
except nncore.ModelFormatError as error:
    print(error)
""", timeout=60)
    assert "not a regular file" in out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_loading_a_named_pipe_neither_blocks_nor_reads(tmp_path):
    fifo = tmp_path / "model.nncore"
    os.mkfifo(fifo)
    out = run_capped(f"""
import nncore
try:
    nncore.load({str(fifo)!r})
except nncore.ModelFormatError as error:
    print(error)
""", timeout=60)
    assert "not a regular file" in out


def test_a_directory_is_not_a_model_file(tmp_path):
    with pytest.raises(IsADirectoryError):
        nncore.load(tmp_path)


def test_memory_errors_are_not_disguised_as_format_errors(monkeypatch):
    def exhausted(*args):
        raise MemoryError("out of memory")
    monkeypatch.setattr(saving, "read", exhausted)
    with pytest.raises(MemoryError):
        loads(b"PK\x05\x06" + bytes(18))


def small_file() -> bytes:
    net = nncore.Network([nncore.Dense(3), nncore.Dense(2)], input_shape=(4,), seed=0)
    return saving.dumps(net.build())


def with_document(data: bytes, edit) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()}
    document = json.loads(parts["nncore.json"])
    edit(document)
    parts["nncore.json"] = json.dumps(document).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, value in parts.items():
            archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), value)
    return buffer.getvalue()


def test_npy_headers_declaring_huge_shapes_are_refused_before_allocating():
    huge = [10**6, 10**6]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                   "shape": tuple(huge)})

    def edit(document):
        document["weights"][0][0]["shape"] = huge

    data = with_document(small_file(), edit)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()}
    parts["w0.npy"] = header.getvalue() + parts["w0.npy"][128:]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, value in parts.items():
            archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), value)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match="declares"):
            loads(buffer.getvalue())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_huge_dense_layer_in_a_config_is_refused_before_allocating():
    config = nncore.Network([nncore.Dense(3), nncore.Dense(2)]).get_config()
    config["layers"][1]["config"]["units"] = 10**12
    net = nncore.Network.from_config(config)          # no input shape: nothing built
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\): .*memory budget"):
        net.build((4,))
    config["input_shape"] = [4]
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\): .*memory budget"):
        nncore.Network.from_config(config)

    def huge_units(document):
        document["network"]["layers"][1]["config"]["units"] = 10**12

    unbuilt = saving.dumps(nncore.Network([nncore.Dense(3), nncore.Dense(2)]))
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\): .*memory budget"):
        loads(with_document(unbuilt, huge_units)).build((4,))
    with pytest.raises(ModelFormatError, match=r"layer 1 \(Dense\)"):
        loads(with_document(small_file(), huge_units))


def test_a_huge_convolution_window_is_refused_before_its_workspace_is_allocated():
    # few parameters, but an im2col workspace of 10^13 values per sample
    net = nncore.Network([nncore.Conv2D(1, 2000)], input_shape=(4000, 4000, 1), seed=0)
    session = nncore.InferenceSession(net.build())
    x = np.zeros((1, 4000, 4000, 1), np.float32)
    with pytest.raises(ValueError, match="buffers for a batch of 1 samples .*memory budget"):
        session.predict(x)
    with pytest.raises(ValueError, match="memory budget"):
        net.predict(x)


def test_a_huge_convolution_kernel_in_a_config_is_refused_before_allocating():
    config = nncore.Network([nncore.Conv2D(64, 3)]).get_config()
    config["layers"][0]["config"]["kernel_size"] = [3000, 3000]
    config["input_shape"] = [3000, 3000, 3]
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2D\): 1,728,000,064 parameters "
                                         r"need 6.4 GiB, over nncore's memory budget"):
        nncore.Network.from_config(config)


def test_the_budget_can_be_lowered_and_raised(budget):
    nncore.set_memory_budget(10_000)
    with pytest.raises(ValueError, match="3,000 parameters need 11.7 KiB"):
        nncore.Network([nncore.Dense(1000)], input_shape=(2,)).build()
    nncore.set_memory_budget(1 << 30)
    nncore.Network([nncore.Dense(1000)], input_shape=(2,)).build()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive number of bytes"):
            nncore.set_memory_budget(bad)


def test_the_budget_comes_from_the_environment():
    out = run_capped("""
import nncore
print(nncore.get_memory_budget())
try:
    nncore.Network([nncore.Dense(1000)], input_shape=(2,)).build()
except ValueError as error:
    print(error)
""".replace("import nncore", "import os; os.environ['NNCORE_MEMORY_BUDGET'] = '5000'\n"
            "import nncore"))
    assert out.splitlines()[0] == "5000"
    assert "over nncore's memory budget of 4.9 KiB" in out


# ------------------------------------------------------- found by trying
def test_dense_2_pow_40_at_build_is_a_value_error_naming_the_layer():
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\): 1,099,511,627,776 parameters "
                                         r"\(and 5 in the layers before\) need"):
        nncore.Network([nncore.Dense(1), nncore.Dense(2**40, use_bias=False)],
                       input_shape=(4,)).build()


def test_float32_weights_are_drawn_without_a_float64_copy():
    rng = np.random.default_rng(0)
    expected = rng.uniform(-1, 1, (1500, 2000)) * np.sqrt(6 / 3500)
    tracemalloc.start()
    try:
        net = nncore.Network([nncore.Dense(2000)], input_shape=(1500,), seed=0).build()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    weights = net.layers[0].W
    # W and its gradient (12 MB each; a block of float64 draws, 8 MB, is freed
    # before the gradient exists), not W plus a 24 MB float64 copy of it
    assert peak < 2 * weights.nbytes + 4 * 2**20, peak
    # the same values as drawing the whole array at once
    np.testing.assert_allclose(weights, expected.astype(np.float32), rtol=1e-6)


def test_one_layer_object_cannot_be_in_two_networks():
    layer = nncore.Dense(3)
    first = nncore.Network([layer], input_shape=(4,)).build()
    with pytest.raises(ValueError, match="Dense object already belongs to another network"):
        nncore.Network([layer], input_shape=(100_000,))
    x = np.ones((2, 4), np.float32)
    assert first.predict(x).shape == (2, 3)


def test_one_layer_object_cannot_be_at_two_positions():
    layer = nncore.Dense(8)
    with pytest.raises(ValueError, match="already layer 0 of the network"):
        nncore.Network([layer, layer])


def test_a_layer_rebuilt_for_another_input_is_caught_before_reading_past_rows():
    net = nncore.Network([nncore.Dense(3)], input_shape=(4,)).build()
    net.layers[0].build((100_000,))
    with pytest.raises(RuntimeError, match=r"layer 0 \(Dense\): built for 100000 input "
                                           r"values per sample.* has 4"):
        net.predict(np.ones((2, 4)))


def test_a_declared_input_shape_is_enforced_on_the_first_data():
    net = nncore.Network([nncore.Dense(2)], input_shape=(4,))
    with pytest.raises(ValueError, match=r"expected input shape \(None, 4\), received \(3, 5\)"):
        net.predict(np.ones((3, 5)))
    net.use("mse")
    with pytest.raises(ValueError, match=r"expected input shape \(None, 4\)"):
        net.fit(np.ones((3, 5)), np.ones((3, 2)), verbose=0)


def test_inference_session_refuses_an_out_that_overlaps_x():
    net = nncore.Network([nncore.Dense(4, "tanh")], input_shape=(4,), seed=0).build()
    session = nncore.InferenceSession(net)
    x = np.random.default_rng(0).random((6, 4), dtype=np.float32)
    expected = session.predict(x)
    with pytest.raises(ValueError, match="out overlaps x"):
        session.predict(x, out=x)
    buffer = np.concatenate([x, x])
    with pytest.raises(ValueError, match="out overlaps x"):
        session.predict(buffer[:6], out=buffer[3:9])
    assert np.array_equal(x, buffer[:6])          # nothing was written
    out = np.empty_like(x)
    assert np.array_equal(session.predict(x, out), expected)


def test_fit_clamps_batch_size_to_the_data():
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 5)), rng.random((64, 2))
    huge = nncore.Network([nncore.Dense(2)], seed=0).use("mse")
    huge.fit(x, y, epochs=3, batch_size=10**7, verbose=0)
    assert huge.plans._train_plan.capacity == 64
    exact = nncore.Network([nncore.Dense(2)], seed=0).use("mse")
    exact.fit(x, y, epochs=3, batch_size=64, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(huge.get_weights(), exact.get_weights()))


@pytest.mark.parametrize("rate, bad", [(-0.1, "-0.1"), (0.0, "0.0"), (float("nan"), "nan"),
                                       (float("inf"), "inf")])
def test_schedules_giving_bad_rates_are_refused_at_that_step(rate, bad):
    x, y = np.ones((8, 3)), np.ones((8, 1))
    schedule = lambda step: 0.01 if step < 5 else rate           # noqa: E731
    net = nncore.Network([nncore.Dense(1)], seed=0)
    net.use("mse", optimizer=nncore.optimizers.SGD(schedule))
    with pytest.raises(ValueError, match=rf"SGD: the learning rate \(or schedule\) gave "
                                         rf"{bad} for step 5; rates must be positive"):
        net.fit(x, y, epochs=10, batch_size=4, verbose=0)


def test_a_schedule_object_and_the_scheduler_callback_are_checked_too():
    class Falling(nncore.schedules.LearningRateSchedule):
        def rates(self, first_step, count):
            return 0.1 - 0.05 * np.arange(first_step, first_step + count)

    x, y = np.ones((8, 3)), np.ones((8, 1))
    net = nncore.Network([nncore.Dense(1)], seed=0).use("mse", optimizer=nncore.optimizers.SGD(Falling()))
    with pytest.raises(ValueError, match="gave 0.0 for step 2"):
        net.fit(x, y, epochs=4, batch_size=4, verbose=0)
    zero = nncore.callbacks.LearningRateScheduler(lambda epoch, rate: 0.0)
    with pytest.raises(ValueError, match="returned 0.0 for epoch 0"):
        nncore.Network([nncore.Dense(1)], seed=0).use("mse").fit(
            x, y, epochs=2, verbose=0, callbacks=[zero])


def test_set_num_threads_gives_the_allowed_range():
    for bad in (2**31, 0, -1, 1025):
        with pytest.raises(ValueError, match="an integer from 1 to 1024"):
            nncore.set_num_threads(bad)
