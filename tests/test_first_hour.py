"""What a new user meets in the first hour: importing an unbuilt checkout,
a validation split that misses classes, the examples' options."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nncore

ROOT = Path(__file__).resolve().parents[1]


def test_importing_an_unbuilt_checkout_says_what_to_run(tmp_path):
    package = Path(nncore.__file__).resolve().parent
    shutil.copytree(package, tmp_path / "nncore",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", "import nncore"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: nncore's compiled core is not built")
    assert "pip install" in last and "build_ext --inplace" in last


def label_sorted(n=200, classes=4):
    rng = np.random.default_rng(0)
    labels = np.sort(np.arange(n) % classes)
    return rng.normal(size=(n, 6)).astype(np.float32) + labels[:, None], labels


@pytest.mark.parametrize("loss, one_hot", [
    (nncore.losses.SparseCategoricalCrossentropy(from_logits=True), False),
    (nncore.losses.CategoricalCrossentropy(from_logits=True), True)])
def test_a_validation_split_of_label_sorted_data_warns(loss, one_hot):
    x, labels = label_sorted()
    y = np.eye(4)[labels] if one_hot else labels
    net = nncore.Network([nncore.Dense(4)], seed=0)
    net.use(loss)
    with pytest.warns(UserWarning, match=r"holds out the last 20 samples, which have only "
                                         r"class 3: the data looks sorted by label") as caught:
        net.fit(x, y, epochs=1, validation_split=0.1, verbose=0)
    assert caught[0].filename == __file__
    with pytest.warns(UserWarning, match=r"classes 2, 3 that the training part lacks"):
        net.fit(x, y, epochs=1, validation_split=0.5, verbose=0)


def test_a_validation_split_of_shuffled_data_does_not_warn(recwarn):
    x, labels = label_sorted()
    order = np.random.default_rng(1).permutation(len(x))
    net = nncore.Network([nncore.Dense(4)], seed=0)
    net.use(nncore.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(x[order], labels[order], epochs=1, validation_split=0.1, verbose=0)
    regression = nncore.Network([nncore.Dense(1)], seed=0)
    regression.use("mse")
    regression.fit(x, labels.astype(np.float32), epochs=1, validation_split=0.1, verbose=0)
    assert not [w for w in recwarn if "sorted by label" in str(w.message)]
