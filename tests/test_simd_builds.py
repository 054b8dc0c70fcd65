"""The kernel modules built for a wider SIMD instruction set (AVX2) must give exactly the results of the baseline build: they are loaded on
whatever CPU supports them, so a result must not depend on the CPU."""
import os
import subprocess
from pathlib import Path

import pytest

import nncore
import nncore._native
from nncore._native.cpu import supported_simd
from subprocess_helpers import run_outside_checkout

# trains an MLP (Adam, dropout, batch norm), a CNN (SGD, fused conv+pool,
# unfused conv, average pool) and a recurrent net (LSTM, GRU, RMSprop) in
# both dtypes, predicts with them (Winograd included), and prints the SIMD
# level and a digest of every output and weight
RUN = r"""
import hashlib, numpy as np, nncore
digest = hashlib.sha256()
rng = np.random.default_rng(0)
for dtype in ("float32", "float64"):
    x = rng.normal(size=(96, 12, 12, 3)).astype(dtype)
    y = rng.integers(0, 4, 96)
    cnn = nncore.Network([nncore.Conv2D(8, 3, activation="relu"), nncore.MaxPool2D(2),
                          nncore.Conv2D(8, 3, padding="same", activation="tanh"),
                          nncore.AvgPool2D(2), nncore.Flatten(), nncore.Dense(4)],
                         seed=1, dtype=dtype)
    mlp = nncore.Network([nncore.Flatten(), nncore.Dense(32), nncore.BatchNormalization(),
                          nncore.Activation("relu"), nncore.Dropout(0.2),
                          nncore.Dense(4, activation="softmax")], seed=2, dtype=dtype)
    rnn = nncore.Network([nncore.LSTM(6, return_sequences=True), nncore.GRU(5), nncore.Dense(4)],
                         seed=3, dtype=dtype)
    sequences = x.reshape(96, 36, 12)
    for net, optimizer, inputs in ((cnn, "sgd", x), (mlp, "adam", x), (rnn, "rmsprop", sequences)):
        net.use("sparse_categorical_crossentropy", optimizer=optimizer)
        with nncore.threads(1):
            net.fit(inputs, y, epochs=2, batch_size=16, verbose=0)
            digest.update(net.predict(inputs).tobytes())
            digest.update(net.predict(inputs[:1]).tobytes())
        for weight in net.get_weights():
            digest.update(weight.tobytes())
print(nncore.simd_level(), digest.hexdigest())
"""


def run_with(level, tmp_path, monkeypatch):
    monkeypatch.setenv("NNCORE_SIMD", level)
    return run_outside_checkout(RUN, tmp_path).split()


@pytest.mark.skipif("NNCORE_SIMD" in os.environ, reason="NNCORE_SIMD chooses the build")
def test_the_widest_supported_build_is_loaded():
    files = [path.name for path in Path(nncore._native.__file__).parent.iterdir()]
    built = {level for level in ("avx2",)
             if any(name.split(".")[0].endswith(f"_{level}") for name in files)}
    expected = next((level for level in supported_simd() if level in built), "baseline")
    assert nncore._native.SIMD == expected == nncore.simd_level()


@pytest.mark.parametrize("level", ["avx2"])
def test_wider_builds_give_the_baseline_results_bit_for_bit(level, tmp_path, monkeypatch):
    if level not in supported_simd():
        pytest.skip(f"this CPU has no {level}")
    used, digest = run_with(level, tmp_path, monkeypatch)
    if used != level:
        pytest.skip(f"nncore was not built for {level} here (loaded {used})")
    assert run_with("baseline", tmp_path, monkeypatch) == ["baseline", digest]


def test_an_unknown_simd_level_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCORE_SIMD", "sse9")
    with pytest.raises(subprocess.CalledProcessError) as error:
        run_outside_checkout("import nncore", tmp_path)
    assert "NNCORE_SIMD='sse9': expected avx2 or baseline" in error.value.stderr
