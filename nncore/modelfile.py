"""The model-file container: a zip archive of uncompressed members

    nncore.json   a JSON document (what it holds is `saving`'s business)
    w<i>.npy      one NumPy .npy array per listed array

read without pickles (the .npy headers are parsed here) and with every
declared size checked against the file before anything is read or
allocated; every problem raises `ModelFormatError`.  Files are written
through `_safe_write.write_file`."""
from __future__ import annotations

import errno
import json
import os
import re
import stat
import threading
import zipfile
from typing import List

import numpy as np

from .errors import ModelFormatError

CONFIG_MEMBER = "nncore.json"
MAX_CONFIG_BYTES = 1 << 22          # 4 MiB of JSON: thousands of layers
MAX_NPY_HEADER = 4096
READ_CHUNK = 1 << 22                # arrays are read in pieces of 4 MiB
ARRAY_MEMBER = re.compile(r"w[0-9]{1,9}\.npy")
ARRAY_KINDS = "biuf"                 # dtypes an array may have: no objects, no strings
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)   # fixed, so that equal networks give equal files


# ----------------------------------------------------------------- writing
def add_arrays(values, arrays: List[np.ndarray]) -> list:
    """Append `values` to `arrays` (the file's array list) and return their
    manifest entries {member, dtype, shape}."""
    entries = []
    for value in values:
        value = np.ascontiguousarray(value)
        if value.dtype.kind not in ARRAY_KINDS:
            raise TypeError(f"cannot save an array of dtype {value.dtype}")
        entries.append({"member": f"w{len(arrays)}.npy", "dtype": value.dtype.str,
                        "shape": list(value.shape)})
        arrays.append(value)
    return entries


def write_archive(f, document: dict, arrays: List[np.ndarray]) -> None:
    """Write the JSON document and the arrays (as listed by add_arrays) to the
    binary file object f."""
    text = json.dumps(document, allow_nan=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr(zipfile.ZipInfo(CONFIG_MEMBER, _ZIP_DATE), text)
        for index, value in enumerate(arrays):
            info = zipfile.ZipInfo(f"w{index}.npy", _ZIP_DATE)
            with archive.open(info, "w", force_zip64=value.nbytes > (1 << 30)) as member:
                np.lib.format.write_array(member, value, allow_pickle=False)


# ----------------------------------------------------------------- reading
def guarded(function, *args):
    # Every failure while parsing a file becomes a ModelFormatError: the checks
    # below raise it with a precise message, and anything they did not foresee
    # (zipfile, numpy or JSON parser errors on garbage) is wrapped here.
    try:
        return function(*args)
    except (ModelFormatError, MemoryError):
        raise
    except Exception as error:
        raise ModelFormatError(f"damaged or invalid model file "
                               f"({type(error).__name__}: {error})") from error


def open_regular(path):
    """`path` opened for binary reading: a regular file (devices such as
    /dev/zero, pipes and sockets raise ModelFormatError before anything is
    read; a directory raises IsADirectoryError)."""
    path = os.fspath(path)
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        if not stat.S_ISREG(mode):
            raise ModelFormatError(f"{path!r} is not a regular file (a device, pipe or "
                                   f"socket); nncore reads model files only")
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "rb")


def open_archive(f, size: int) -> zipfile.ZipFile:
    """The zip archive in the binary file object f of `size` bytes."""
    try:
        return zipfile.ZipFile(f)
    except zipfile.BadZipFile:
        raise ModelFormatError("not a nncore model file (not a zip archive)") from None


def read_document(archive: zipfile.ZipFile, members: dict):
    """The parsed JSON document of an archive (members: checked_members)."""
    if CONFIG_MEMBER not in members:
        raise ModelFormatError(f"not a nncore model file (no {CONFIG_MEMBER})")
    return parse_json(read_member(archive, members[CONFIG_MEMBER]))


def checked_members(archive: zipfile.ZipFile, size: int) -> dict:
    infos = archive.infolist()
    if len(infos) > 1 + 1_000_000:
        raise ModelFormatError(f"too many archive members ({len(infos)})")
    members, total = {}, 0
    for info in infos:
        name = info.filename
        if name != CONFIG_MEMBER and not ARRAY_MEMBER.fullmatch(name):
            raise ModelFormatError(f"unexpected archive member {name!r}")
        if name in members:
            raise ModelFormatError(f"duplicate archive member {name!r}")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise ModelFormatError(f"archive member {name!r} is compressed or encrypted; "
                                   f"nncore model files store members uncompressed")
        if info.file_size != info.compress_size:
            raise ModelFormatError(f"archive member {name!r} declares {info.file_size} "
                                   f"bytes but stores {info.compress_size}")
        total += info.file_size
        if info.header_offset + info.file_size > size or total > size:
            raise ModelFormatError(f"archive member {name!r} declares more data than the "
                                   f"file holds ({size} bytes)")
        members[name] = info
    return members


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    limit = MAX_CONFIG_BYTES if info.filename == CONFIG_MEMBER else info.file_size
    if info.file_size > limit:
        raise ModelFormatError(f"{info.filename} is too large ({info.file_size} bytes)")
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)   # reading to the end checks the CRC
    if len(data) != info.file_size:
        raise ModelFormatError(f"{info.filename}: read {len(data)} bytes, the archive "
                               f"declares {info.file_size}")
    return data


def parse_json(data: bytes):
    def constant(name):
        raise ModelFormatError(f"{CONFIG_MEMBER}: {name} is not allowed")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ModelFormatError(f"{CONFIG_MEMBER} is not valid JSON: {error}") from None


def check_entries(entries, where: str) -> None:
    if not isinstance(entries, list):
        raise ModelFormatError(f"{where}: expected a list of arrays")
    for entry in entries:
        entry = checked_dict(entry, {"member", "dtype", "shape"}, f"{where} entry")
        if not isinstance(entry["member"], str) or not ARRAY_MEMBER.fullmatch(entry["member"]):
            raise ModelFormatError(f"{where}: invalid member name {entry['member']!r}")
        if not isinstance(entry["dtype"], str) or len(entry["dtype"]) > 8:
            raise ModelFormatError(f"{where}: invalid dtype {entry['dtype']!r}")
        try:
            dtype = np.dtype(entry["dtype"])
        except TypeError:
            raise ModelFormatError(f"{where}: invalid dtype {entry['dtype']!r}") from None
        if dtype.kind not in ARRAY_KINDS or dtype.str != entry["dtype"]:
            raise ModelFormatError(f"{where}: arrays of dtype {entry['dtype']!r} are not "
                                   f"allowed (numbers only)")
        checked_shape(entry["shape"], f"{where} shape")


def nbytes(entry) -> int:
    count = 1
    for d in entry["shape"]:
        count *= d                  # Python ints: no overflow
    return count * np.dtype(entry["dtype"]).itemsize


def check_entry_size(entry, info) -> None:
    # the data of a stored member is at most the file size: so is every array
    if nbytes(entry) > info.file_size:
        raise ModelFormatError(f"{info.filename}: declares {entry['shape']} "
                               f"{entry['dtype']} ({nbytes(entry)} bytes) but the member "
                               f"holds {info.file_size} bytes")


# NumPy parses .npy headers with the ast module, whose C code keeps a
# process-wide recursion counter in CPython 3.11 and fails ("AST constructor
# recursion depth mismatch") when threads parse at once: one at a time
_HEADER_LOCK = threading.Lock()


def read_array(archive, info, entry, out=None) -> np.ndarray:
    """The array of member `info` (declared by manifest `entry`), read
    straight into `out` (an array of the entry's shape, of its dtype or one
    it converts to) or into a new array: never a second copy of the data."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise ModelFormatError(f"{info.filename}: unsupported .npy version {version}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        with _HEADER_LOCK:
            header = read_header(member, max_header_size=MAX_NPY_HEADER)
        shape, fortran_order, dtype = header
        if dtype.hasobject:
            raise ModelFormatError(f"{info.filename} holds Python objects (a pickle): refused")
        if fortran_order or dtype != np.dtype(entry["dtype"]) or \
                tuple(shape) != tuple(entry["shape"]):
            raise ModelFormatError(f"{info.filename}: the .npy header ({dtype}, {shape}) does "
                                   f"not match {CONFIG_MEMBER} ({entry['dtype']}, "
                                   f"{entry['shape']})")
        expected = nbytes(entry)
        left = info.file_size - member.tell()
        if left != expected:
            raise ModelFormatError(f"{info.filename}: holds {left} data bytes, its "
                                   f"header declares {expected}")
        direct = out is not None and out.dtype == dtype and out.flags.c_contiguous
        array = out if direct else np.empty(shape, dtype)
        view = memoryview(array.reshape(-1).view(np.uint8))
        for start in range(0, expected, READ_CHUNK):
            part = view[start:start + READ_CHUNK]
            if member.readinto(part) != len(part):
                raise ModelFormatError(f"{info.filename}: the data ends early")
        if member.read(1):                   # reading to the end checks the CRC
            raise ModelFormatError(f"{info.filename}: more data than declared")
    if out is not None and not direct:
        out[...] = array
        return out
    return array


def checked_dict(value, keys: set, where: str) -> dict:
    if not isinstance(value, dict):
        raise ModelFormatError(f"{where} must be a JSON object, got {type(value).__name__}")
    if set(value) != keys:
        missing, extra = sorted(keys - set(value)), sorted(set(value) - keys)
        raise ModelFormatError(f"{where}: missing keys {missing}, unexpected keys {extra}")
    return value


def checked_shape(value, where: str, positive: bool = False) -> tuple:
    if not isinstance(value, list) or len(value) > 32 or \
            not all(is_int(d) and (d > 0 if positive else d >= 0) for d in value):
        raise ModelFormatError(f"{where}: expected a list of at most 32 "
                               f"{'positive' if positive else 'non-negative'} integers, "
                               f"got {value!r}")
    return tuple(value)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
