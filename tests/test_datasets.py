import gzip

import numpy as np
import pytest

from nncore import datasets
from nncore.utils import to_categorical


def write_idx(path, array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


def test_load_idx_raw_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", images)
    np.testing.assert_array_equal(datasets.load_idx(tmp_path / "a.idx"), images)
    with gzip.open(tmp_path / "a.idx.gz", "wb") as f:
        f.write((tmp_path / "a.idx").read_bytes())
    np.testing.assert_array_equal(datasets.load_idx(tmp_path / "a.idx.gz"), images)
    floats = np.linspace(0, 1, 6).reshape(2, 3)
    write_idx(tmp_path / "f.idx", floats, code=0x0E)
    np.testing.assert_array_equal(datasets.load_idx(tmp_path / "f.idx"), floats)


def test_load_idx_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(datasets.IDXFormatError, match="bad magic"):
        datasets.load_idx(tmp_path / "bad")
    write_idx(tmp_path / "t.idx", np.zeros((4, 4), np.uint8))
    data = (tmp_path / "t.idx").read_bytes()
    for cut in (3, 9, len(data) - 1):
        (tmp_path / "cut").write_bytes(data[:cut])
        with pytest.raises(datasets.IDXFormatError):
            datasets.load_idx(tmp_path / "cut")
    (tmp_path / "g.gz").write_bytes(gzip.compress(data)[:-6])
    with pytest.raises(datasets.IDXFormatError):
        datasets.load_idx(tmp_path / "g.gz")


def test_load_mnist_from_directory(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (5000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert set(np.unique(y_train)) == set(range(10))


def test_to_categorical():
    np.testing.assert_array_equal(to_categorical([0, 2, 1]), np.eye(3)[[0, 2, 1]])
    assert to_categorical([1], num_classes=4).shape == (1, 4)
    with pytest.raises(ValueError):
        to_categorical([0.5])
    with pytest.raises(ValueError):
        to_categorical([3], num_classes=2)
