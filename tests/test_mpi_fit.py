"""nncore.mpi.fit in a real MPI job (mpiexec, 1 to 3 ranks): equal to
Network.fit on the ranks' rows put together, to 1e-10 in float64, with
Adam, momentum, dropout and augmentation, shuffled, rows split unevenly or
shared; the replicas stay equal bit for bit; BatchNormalization refused."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py")
# the mpiexec of this Python's environment (MPICH's wheel puts it there), else the PATH's
MPIEXEC = next((str(p) for p in [Path(sys.executable).with_name("mpiexec")] if p.exists()),
               shutil.which("mpiexec"))
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec on the PATH")

import nncore  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import mpi_fit_job  # noqa: E402

JOB = Path(__file__).with_name("mpi_fit_job.py")


def run_job(ranks, case, tmp_path, shared=False):
    out = tmp_path / f"{case}-{ranks}.npz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(nncore.__file__).resolve().parents[1])] + sys.path))
    done = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, str(JOB), case,
                           str(out), "shared" if shared else "split"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)


@pytest.mark.parametrize("ranks", [1, 2, 3])
@pytest.mark.parametrize("case", ["mlp", "dropout"])
def test_mpi_fit_equals_fit(tmp_path, ranks, case):
    result = run_job(ranks, case, tmp_path)
    net = mpi_fit_job.network(case)
    x, y = mpi_fit_job.data(case)
    expected = net.fit(x, y, epochs=3, batch_size=64, verbose=0)
    weights = net.get_weights()
    for i, w in enumerate(weights):
        got = result[f"arr_{i}"]
        assert np.abs(got - w).max() <= 1e-10 * np.abs(w).max(), f"array {i}"
    states = [s for layer in net.layers for s in layer.state if s.dtype.kind == "u"]
    for j, s in enumerate(states):      # the generators advanced as fit advances them
        np.testing.assert_array_equal(result[f"arr_{len(weights) + j}"], s)
    np.testing.assert_allclose(result["loss"], expected.history["loss"], rtol=1e-10)


def test_mpi_fit_with_shared_rows_equals_fit(tmp_path):
    result = run_job(2, "dropout", tmp_path, shared=True)
    net = mpi_fit_job.network("dropout")
    net.fit(*mpi_fit_job.data("dropout"), epochs=3, batch_size=64, verbose=0)
    for i, w in enumerate(net.get_weights()):
        assert np.abs(result[f"arr_{i}"] - w).max() <= 1e-10 * np.abs(w).max()


def test_mpi_fit_refuses_batch_normalization_naming_the_layer():
    import nncore.mpi
    net = nncore.Network([nncore.Dense(8), nncore.BatchNormalization(), nncore.Dense(2)],
                         input_shape=(6,), seed=0).use("mse")
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNormalization\)"):
        nncore.mpi.fit(net, np.zeros((10, 6)), np.zeros((10, 2)), verbose=0)
