"""Data sets: the IDX file format and MNIST."""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Tuple, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

# IDX type codes -> big-endian NumPy dtypes
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IDXFormatError(ValueError):
    """An IDX file is damaged, truncated or not an IDX file."""


def load_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a NumPy array."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(2)
    try:
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as error:
        raise IDXFormatError(f"{path}: damaged gzip stream ({error})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise IDXFormatError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    dtype = np.dtype(_IDX_TYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(f"{path}: truncated header")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise IDXFormatError(f"{path}: expected {expected} bytes for shape {shape}, "
                             f"found {len(data)} (truncated or damaged)")
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory}: no {stem} or {stem}.gz")


def load_mnist(directory: PathLike) -> Tuple[Tuple[np.ndarray, np.ndarray],
                                            Tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) from a directory of MNIST IDX files.

    Images are uint8 arrays (n, 28, 28), labels uint8 (n,), as keras returns
    them.  The training files are `train-*-idx?-ubyte[.gz]`, or the smaller
    `train5k-*` subset when the full set is absent.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} does not exist")
    prefix = "train" if any(directory.glob("train-images-idx3-ubyte*")) else "train5k"
    x_train = load_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
    y_train = load_idx(_find(directory, f"{prefix}-labels-idx1-ubyte"))
    x_test = load_idx(_find(directory, "t10k-images-idx3-ubyte"))
    y_test = load_idx(_find(directory, "t10k-labels-idx1-ubyte"))
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise IDXFormatError(f"{directory}: {name} images {x.shape} and labels "
                                 f"{y.shape} do not match")
    return (x_train, y_train), (x_test, y_test)
