import os
from pathlib import Path

import numpy as np
import pytest

import nncore

MNIST_DIR = Path(os.environ.get("NNCORE_MNIST_DIR",
                                Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"))


def pytest_report_header(config):
    return (f"nncore {nncore.__version__} from {Path(nncore.__file__).parent}, "
            f"OpenMP {'on' if nncore.openmp_enabled() else 'off'}; MNIST data: "
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
