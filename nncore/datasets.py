"""Data sets: the IDX file format and MNIST, with a checked downloader."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

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


#: Where load_mnist downloads from (override with NNCORE_MNIST_URL or url=).
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
#: SHA-256 of the four standard MNIST files as served at MNIST_URL.
MNIST_SHA256: Dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
_CHUNK = 1 << 16


class DownloadError(OSError):
    """A data file could not be downloaded or failed its checksum."""


def data_home() -> Path:
    """The directory where data sets are cached: $NNCORE_DATA, else the
    user cache directory (~/.cache/nncore, ~/Library/Caches/nncore or
    %LOCALAPPDATA%\\nncore)."""
    if os.environ.get("NNCORE_DATA"):
        return Path(os.environ["NNCORE_DATA"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "nncore"


def sha256(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, path: PathLike, expected_sha256: str, timeout: float = 30.0) -> Path:
    """Download `url` to `path` atomically: the bytes go to a temporary file
    in the same directory, are checked (complete, SHA-256 equal to
    `expected_sha256`), and only then renamed to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
            length = r.headers.get("Content-Length")
            for block in iter(lambda: r.read(_CHUNK), b""):
                out.write(block)
                digest.update(block)
                received += len(block)
        if length is not None and received != int(length):
            raise DownloadError(f"{url}: incomplete download ({received} of {length} bytes)")
        if digest.hexdigest() != expected_sha256:
            raise DownloadError(f"{url}: SHA-256 mismatch (expected {expected_sha256}, got "
                                f"{digest.hexdigest()}); the file is damaged or not the "
                                f"expected one, and was not kept")
        os.replace(temp, path)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        if os.path.exists(temp):
            os.remove(temp)
        if isinstance(error, DownloadError):
            raise
        reason = getattr(error, "reason", error)
        raise DownloadError(f"{url}: download failed ({type(error).__name__}: "
                            f"{reason})") from None
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    return path


def fetch_mnist(directory: Optional[PathLike] = None, url: Optional[str] = None) -> Path:
    """Make sure `directory` (default data_home()/'mnist') holds the four
    standard MNIST files with the right SHA-256, downloading the missing or
    damaged ones from `url` (default $NNCORE_MNIST_URL or MNIST_URL)."""
    directory = Path(directory) if directory is not None else data_home() / "mnist"
    base = url or os.environ.get("NNCORE_MNIST_URL") or MNIST_URL
    if not base.endswith("/"):
        base += "/"
    for name, digest in MNIST_SHA256.items():
        target = directory / name
        if target.is_file() and sha256(target) == digest:
            continue
        try:
            download(base + name, target, digest)
        except DownloadError as error:
            names = ", ".join(MNIST_SHA256)
            raise DownloadError(f"MNIST: {error}.\nWithout network access, put the files "
                                f"{names} into {directory} (or set NNCORE_DATA, or call "
                                f"load_mnist(path) with a directory holding them).") from None
    return directory


def load_mnist(path: Optional[PathLike] = None, url: Optional[str] = None
               ) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) from a directory of MNIST IDX files.

    Images are uint8 arrays (n, 28, 28), labels uint8 (n,), as keras returns
    them.  The training files are `train-*-idx?-ubyte[.gz]`, or the smaller
    `train5k-*` subset when the full set is absent.  Without `path`, the four
    standard files are taken from (or first downloaded to) data_home()/'mnist',
    each checked against its SHA-256 (see fetch_mnist).
    """
    directory = Path(path) if path is not None else fetch_mnist(url=url)
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
