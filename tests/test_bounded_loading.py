"""Loading takes little more memory than the weights it reads (arrays are
read straight into the layers' buffers; gradients are committed only when
training writes them), and the memory budget is checked against the file's
arrays before anything is allocated."""
import os

import numpy as np
import pytest

import nncore
from nncore.layers import Dense

from subprocess_helpers import run_outside_checkout

PEAK = r"""
import sys
import nncore

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

base = status("VmRSS")
net = nncore.load(sys.argv[1])
print(status("VmHWM") - base)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                    reason="reads the peak resident size from /proc")
@pytest.mark.parametrize("optimizer", [None, "adam"])
def test_loading_peaks_at_about_the_size_of_the_weights(tmp_path, optimizer):
    net = nncore.Network([Dense(2048, use_bias=False), Dense(2048)], input_shape=(2048,))
    net.use("mse", optimizer=optimizer)
    if optimizer:       # the optimizer state (two more arrays per weight) is in the file
        net.fit(np.zeros((2, 2048)), np.zeros((2, 2048)),
                verbose=0)
    path = tmp_path / "model.nncore"
    net.save(path)
    arrays = sum(w.nbytes for w in net.get_weights()) + \
        (sum(a.nbytes for a in net.optimizer.get_state()) if optimizer else 0)
    code = f"import sys; sys.argv = ['', {str(path)!r}]\n" + PEAK
    peak = int(run_outside_checkout(code, tmp_path))
    assert peak < 1.5 * arrays, (peak, arrays)      # before: about 5x


def test_the_budget_is_checked_against_the_files_arrays_before_loading(tmp_path):
    net = nncore.Network([Dense(512)], input_shape=(512,)).use("mse", optimizer="adam")
    net.fit(np.zeros((2, 512)), np.zeros((2, 512)),
            verbose=0)
    net.save(tmp_path / "m.nncore")
    # the parameters (1 MiB) fit in the budget, the optimizer's state does not
    nncore.set_memory_budget(2 << 20)
    try:
        with pytest.raises(nncore.ModelFormatError, match="arrays of this model file need"):
            nncore.load(tmp_path / "m.nncore")
    finally:
        nncore.set_memory_budget(4 << 30)
    nncore.load(tmp_path / "m.nncore")
