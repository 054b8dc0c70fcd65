import os
import sys
from pathlib import Path


def _prefer_installed_nncore():
    """Keep the checkout off sys.path unless PYTHONPATH asks for it.

    `python -m pytest` puts the current directory first on sys.path, and the
    checkout's nncore/ has no compiled modules unless built in place: run from
    the repository root, the tests would import it instead of the installed
    package. `PYTHONPATH=. python -m pytest` still tests an in-place build.
    """
    root = Path(__file__).resolve().parents[1]
    wanted = {Path(p or os.curdir).resolve()
              for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    if root not in wanted:
        sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != root]


_prefer_installed_nncore()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import nncore  # noqa: E402

# NNCORE_MNIST_DIR, else shared/data/mnist beside the checkout (tests copied
# elsewhere, e.g. to test a wheel, need NNCORE_MNIST_DIR or the MNIST tests skip).
MNIST_DIR = Path(os.environ.get("NNCORE_MNIST_DIR")
                 or Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")


def pytest_report_header(config):
    return (f"nncore {nncore.__version__} from {Path(nncore.__file__).parent}, "
            f"OpenMP {'on' if nncore.openmp_enabled() else 'off'}, "
            f"{nncore.simd_level()} kernels; MNIST data: "
            f"{MNIST_DIR if MNIST_DIR.is_dir() else 'absent (MNIST tests skip)'}")


@pytest.fixture(scope="session")
def mnist():
    """((x_train, y_train), (x_test, y_test)) from ../shared/data/mnist."""
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR} "
                    f"(set NNCORE_MNIST_DIR to run this test)")
    return nncore.datasets.load_mnist(MNIST_DIR)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)
