"""Saving and loading networks in a format that cannot carry code.

A model file is a zip archive with uncompressed members:

    nncore.json   the description: magic, format version, nncore version, the
                  network config (registered class names + JSON configs), the
                  random generator state, and a manifest of the arrays
    w<i>.npy      one NumPy .npy array per weight / state / optimizer array

Loading parses JSON only, constructs only registered classes, reads .npy
headers itself (no pickles) and checks every declared size against the file
before reading or allocating anything; every problem with a file raises
`ModelFormatError`.  Writing is atomic: a temporary file in the target
directory, flushed, fsynced and renamed over the target.
"""
from __future__ import annotations

import io
import json
import os
import re
import tempfile
import zipfile
from typing import List, Optional

import numpy as np

from . import metrics as metrics_module
from . import registry
from ._version import __version__
from .errors import ModelFormatError

MAGIC = "nncore.model"
FORMAT_VERSION = 1
CONFIG_MEMBER = "nncore.json"
MAX_CONFIG_BYTES = 1 << 22          # 4 MiB of JSON: thousands of layers
MAX_NPY_HEADER = 4096
MAX_SAMPLE_SIZE = 1 << 40           # per-sample elements of any layer output
ARRAY_MEMBER = re.compile(r"w[0-9]{1,9}\.npy")
ARRAY_KINDS = "biuf"                 # dtypes an array may have: no objects, no strings
RNG_NAMES = ("PCG64", "PCG64DXSM")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)   # fixed, so that equal networks give equal files

DOCUMENT_KEYS = {"magic", "format_version", "nncore_version", "network", "built", "rng",
                 "shuffle", "weights", "optimizer_state"}
NETWORK_KEYS = {"dtype", "input_shape", "seed", "layers", "loss", "optimizer"}
OPTIONAL_NETWORK_KEYS = {"metrics"}     # written only when set


# ----------------------------------------------------------------- config
def network_config(net) -> dict:
    """The JSON description of a network's structure (no weights)."""
    layers = []
    for index, layer in enumerate(net.layers):
        try:
            name = registry.registered_name("layer", layer)
            config = _json_value(layer.get_config(), "config")
        except (ValueError, TypeError, NotImplementedError) as error:
            raise type(error)(net._where(index, error)) from None
        layers.append({"class": name, "config": config})
    config = {"dtype": net.dtype.name,
              "input_shape": None if net.input_shape is None else list(net.input_shape),
              "seed": int(net.seed) if isinstance(net.seed, (int, np.integer)) and
              not isinstance(net.seed, bool) else None,
              "layers": layers,
              "loss": _object_config("loss", net.loss),
              "optimizer": _object_config("optimizer", net.optimizer)}
    if net.metrics:
        config["metrics"] = _json_value(metrics_module.serialize(net.metrics), "metrics")
    return config


def _object_config(kind: str, obj) -> Optional[dict]:
    if obj is None:
        return None
    if not hasattr(obj, "get_config"):
        raise ValueError(f"the {kind} {obj!r} is made of Python functions and cannot be "
                         f"saved; use a nncore {kind} such as "
                         f"{'MSE' if kind == 'loss' else 'SGD'}")
    name = registry.registered_name(kind, obj)
    return {"class": name, "config": _json_value(obj.get_config(), f"{name} config")}


def _json_value(value, what: str):
    """`value` as plain JSON data (tuples become lists); ValueError otherwise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise ValueError(f"{what}: {value!r} is not finite")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(v, what) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _json_value(v, f"{what}[{k!r}]") for k, v in value.items()}
    raise ValueError(f"{what}: {value!r} is not a JSON value (None, bool, int, float, "
                     f"str, list or dict with str keys)")


def network_from_config(config, cls=None):
    """A new (unbuilt) network from `network_config` output."""
    from .network import Network
    cls = Network if cls is None else cls
    config = _checked_network_dict(config)
    dtype = config["dtype"]
    if dtype not in ("float32", "float64"):
        raise ModelFormatError(f"network config: dtype must be 'float32' or 'float64', "
                               f"got {dtype!r}")
    input_shape = config["input_shape"]
    if input_shape is not None:
        input_shape = _checked_shape(input_shape, "input_shape", positive=True)
    seed = config["seed"]
    if seed is not None and not (_is_int(seed) and seed >= 0):
        raise ModelFormatError(f"network config: seed must be a non-negative integer or "
                               f"null, got {seed!r}")
    if not isinstance(config["layers"], list) or not config["layers"]:
        raise ModelFormatError("network config: 'layers' must be a non-empty list")
    layers = []
    for index, entry in enumerate(config["layers"]):
        cls_name, layer_config = _class_entry(entry, f"layer {index}")
        layer_cls = registry.lookup("layer", cls_name)
        layers.append(_construct(layer_cls, layer_config, f"layer {index} ({cls_name})"))
    loss = _optional_object("loss", config["loss"])
    optimizer = _optional_object("optimizer", config["optimizer"])
    try:
        metrics = metrics_module.deserialize(config.get("metrics", []))
    except (ValueError, TypeError) as error:
        raise ModelFormatError(f"network config: metrics: {error}") from None
    # the input shape is set after construction, which would build the
    # network: loading checks the file's shapes before anything is allocated
    net = cls(layers, dtype=dtype, seed=seed)
    net.input_shape = input_shape
    if loss is not None:
        net.use(loss, optimizer=optimizer, metrics=metrics)
    else:
        net.optimizer, net.metrics = optimizer, metrics
    return net


def _checked_network_dict(config) -> dict:
    keys = NETWORK_KEYS
    if isinstance(config, dict):
        keys = keys | (OPTIONAL_NETWORK_KEYS & set(config))
    return _checked_dict(config, keys, "network config")


def _optional_object(kind: str, entry):
    if entry is None:
        return None
    name, config = _class_entry(entry, kind)
    return _construct(registry.lookup(kind, name), config, f"{kind} ({name})")


def _construct(cls, config: dict, where: str):
    try:
        return cls.from_config(config)
    except (ValueError, TypeError, NotImplementedError) as error:
        raise ModelFormatError(f"{where}: invalid config {config!r}: {error}") from None


def _class_entry(entry, where: str):
    entry = _checked_dict(entry, {"class", "config"}, where)
    if not isinstance(entry["class"], str):
        raise ModelFormatError(f"{where}: 'class' must be a string")
    config = entry["config"]
    if not isinstance(config, dict):
        raise ModelFormatError(f"{where}: 'config' must be an object")
    return entry["class"], config


def _checked_dict(value, keys: set, where: str) -> dict:
    if not isinstance(value, dict):
        raise ModelFormatError(f"{where} must be a JSON object, got {type(value).__name__}")
    if set(value) != keys:
        missing, extra = sorted(keys - set(value)), sorted(set(value) - keys)
        raise ModelFormatError(f"{where}: missing keys {missing}, unexpected keys {extra}")
    return value


def _checked_shape(value, where: str, positive: bool = False) -> tuple:
    if not isinstance(value, list) or len(value) > 32 or \
            not all(_is_int(d) and (d > 0 if positive else d >= 0) for d in value):
        raise ModelFormatError(f"{where}: expected a list of at most 32 "
                               f"{'positive' if positive else 'non-negative'} integers, "
                               f"got {value!r}")
    return tuple(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ----------------------------------------------------------------- writing
def save(net, path, include_optimizer: bool = True) -> None:
    """Write `net` to `path` atomically (see the module docstring)."""
    write_atomically(path, lambda f: write(net, f, include_optimizer))


def write_atomically(path, write_to) -> None:
    """Call `write_to(f)` on a temporary file beside `path`, then rename it
    over `path`: a crash never leaves a half-written file under that name."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".nncore-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write_to(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:        # not possible on some platforms (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dumps(net, include_optimizer: bool = True) -> bytes:
    """The model file of `net` as bytes (used for pickling and copies)."""
    buffer = io.BytesIO()
    write(net, buffer, include_optimizer)
    return buffer.getvalue()


def write(net, f, include_optimizer: bool = True) -> None:
    """Write the model file of `net` to the binary file object `f`."""
    config = network_config(net)
    arrays: List[np.ndarray] = []
    weights = [manifest(layer.get_weights(), arrays) for layer in net.layers] \
        if net.built else None
    optimizer_state = None
    if include_optimizer and net.optimizer is not None:
        optimizer_state = manifest(net.optimizer.get_state(), arrays)
    document = {"magic": MAGIC, "format_version": FORMAT_VERSION,
                "nncore_version": __version__, "network": config, "built": bool(net.built),
                "rng": _rng_state(net.rng), "shuffle": _shuffle_state(net),
                "weights": weights,
                "optimizer_state": optimizer_state}
    write_archive(f, document, arrays)


def manifest(values, arrays: list) -> list:
    """Entries describing `values` (appended to `arrays`, stored as w<i>.npy)."""
    entries = []
    for value in values:
        value = np.ascontiguousarray(value)
        if value.dtype.kind not in ARRAY_KINDS:
            raise TypeError(f"cannot save an array of dtype {value.dtype}")
        entries.append({"member": f"w{len(arrays)}.npy", "dtype": value.dtype.str,
                        "shape": list(value.shape)})
        arrays.append(value)
    return entries


def write_archive(f, document: dict, arrays: list) -> None:
    """The zip archive: the JSON document, then arrays[i] as w<i>.npy."""
    text = json.dumps(document, allow_nan=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr(zipfile.ZipInfo(CONFIG_MEMBER, _ZIP_DATE), text)
        for index, value in enumerate(arrays):
            info = zipfile.ZipInfo(f"w{index}.npy", _ZIP_DATE)
            with archive.open(info, "w", force_zip64=value.nbytes > (1 << 30)) as member:
                np.lib.format.write_array(member, value, allow_pickle=False)


def _shuffle_state(net) -> Optional[list]:
    state = net._shuffle_state
    return None if state is None else [int(word) for word in state]


def _rng_state(rng) -> Optional[dict]:
    state = rng.bit_generator.state
    return state if state.get("bit_generator") in RNG_NAMES else None


# ----------------------------------------------------------------- reading
def load(path):
    """The network saved in `path`; ModelFormatError if the file is damaged,
    hostile, from a newer format or names an unregistered class."""
    with open(os.fspath(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return _guarded(read, f, size)


def loads(data: bytes):
    """The network in the model-file bytes `data` (see `dumps`)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ModelFormatError(f"expected model-file bytes, got {type(data).__name__}")
    return _guarded(read, io.BytesIO(data), len(data))


def _guarded(function, *args):
    # Every failure while parsing a file becomes a ModelFormatError: the checks
    # below raise it with a precise message, and anything they did not foresee
    # (zipfile, numpy or JSON parser errors on garbage) is wrapped here.
    try:
        return function(*args)
    except ModelFormatError:
        raise
    except Exception as error:   # (MemoryError is not: sizes are bounded by the file)
        raise ModelFormatError(f"damaged or invalid model file "
                               f"({type(error).__name__}: {error})") from error


def read(f, size: int):
    """The network in the binary file object `f` of `size` bytes."""
    try:
        archive = zipfile.ZipFile(f)
    except zipfile.BadZipFile:
        raise ModelFormatError("not a nncore model file (not a zip archive)") from None
    with archive:
        members = _checked_members(archive, size)
        if CONFIG_MEMBER not in members:
            raise ModelFormatError(f"not a nncore model file (no {CONFIG_MEMBER})")
        document = _parse_json(_read_member(archive, members[CONFIG_MEMBER]))
        document = _checked_document(document)
        weights, optimizer_state = document["weights"], document["optimizer_state"]
        entries = [e for layer_entries in (weights or []) for e in layer_entries]
        entries += optimizer_state or []
        listed = [CONFIG_MEMBER] + [e["member"] for e in entries]
        if len(set(listed)) != len(listed) or set(listed) != set(members):
            raise ModelFormatError(f"the archive members {sorted(members)} do not match "
                                   f"the arrays listed in {CONFIG_MEMBER}")
        for entry in entries:
            _check_entry_size(entry, members[entry["member"]])

        net = network_from_config(document["network"])
        if document["built"]:
            _check_weight_shapes(net, weights)
            net.build()
            _read_weights(net, archive, members, weights)
        _restore_rng(net, document["rng"])
        _restore_shuffle(net, document["shuffle"])
        if optimizer_state:      # (empty: an optimizer that has not been built yet)
            if net.optimizer is None:
                raise ModelFormatError("the file has optimizer state but no optimizer")
            state = [_read_array(archive, members[e["member"]], e) for e in optimizer_state]
            _check_optimizer_state(net, state)
            net.optimizer.set_state(state)
    return net


def _read_weights(net, archive, members: dict, weights: list) -> None:
    for index, (layer, layer_entries) in enumerate(zip(net.layers, weights)):
        targets = list(layer.params) + list(layer.state)
        if len(targets) != len(layer_entries):
            raise ModelFormatError(net._where(
                index, f"expected {len(targets)} arrays, the file has {len(layer_entries)}"))
        for target, entry in zip(targets, layer_entries):
            if np.dtype(entry["dtype"]).newbyteorder("=") != target.dtype or \
                    tuple(entry["shape"]) != target.shape:
                raise ModelFormatError(net._where(
                    index, f"expected an array {target.dtype}{list(target.shape)}, "
                           f"the file has {entry['dtype']}{entry['shape']}"))
            target[...] = _read_array(archive, members[entry["member"]], entry)


def _checked_members(archive: zipfile.ZipFile, size: int) -> dict:
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


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    limit = MAX_CONFIG_BYTES if info.filename == CONFIG_MEMBER else info.file_size
    if info.file_size > limit:
        raise ModelFormatError(f"{info.filename} is too large ({info.file_size} bytes)")
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)   # reading to the end checks the CRC
    if len(data) != info.file_size:
        raise ModelFormatError(f"{info.filename}: read {len(data)} bytes, the archive "
                               f"declares {info.file_size}")
    return data


def _parse_json(data: bytes):
    def constant(name):
        raise ModelFormatError(f"{CONFIG_MEMBER}: {name} is not allowed")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ModelFormatError(f"{CONFIG_MEMBER} is not valid JSON: {error}") from None


def _checked_document(document) -> dict:
    if not isinstance(document, dict) or document.get("magic") != MAGIC:
        raise ModelFormatError(f"not a nncore model file (wrong magic in {CONFIG_MEMBER})")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFormatError(f"invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"this model file has format version {version}, written by nncore "
            f"{document.get('nncore_version')!r}; this nncore ({__version__}) reads format "
            f"versions up to {FORMAT_VERSION}: upgrade nncore to load it")
    document = _checked_dict(document, DOCUMENT_KEYS, CONFIG_MEMBER)
    if not isinstance(document["built"], bool):
        raise ModelFormatError("'built' must be true or false")
    weights = document["weights"]
    network = _checked_network_dict(document["network"])
    if document["built"]:
        if not isinstance(weights, list) or not isinstance(network["layers"], list) or \
                len(weights) != len(network["layers"]):
            raise ModelFormatError("'weights' must list the arrays of every layer")
        if network["input_shape"] is None:
            raise ModelFormatError("a built network needs its input_shape")
        for entries in weights:
            _checked_entries(entries, "weights")
    elif weights is not None:
        raise ModelFormatError("an unbuilt network has no weights")
    if document["optimizer_state"] is not None:
        _checked_entries(document["optimizer_state"], "optimizer_state")
    return document


def _checked_entries(entries, where: str) -> None:
    if not isinstance(entries, list):
        raise ModelFormatError(f"{where}: expected a list of arrays")
    for entry in entries:
        entry = _checked_dict(entry, {"member", "dtype", "shape"}, f"{where} entry")
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
        _checked_shape(entry["shape"], f"{where} shape")


def _nbytes(entry) -> int:
    count = 1
    for d in entry["shape"]:
        count *= d                  # Python ints: no overflow
    return count * np.dtype(entry["dtype"]).itemsize


def _check_entry_size(entry, info) -> None:
    # the data of a stored member is at most the file size: so is every array
    if _nbytes(entry) > info.file_size:
        raise ModelFormatError(f"{info.filename}: declares {entry['shape']} "
                               f"{entry['dtype']} ({_nbytes(entry)} bytes) but the member "
                               f"holds {info.file_size} bytes")


def _check_weight_shapes(net, weights) -> None:
    """Compare the file's arrays with the shapes each layer would create,
    before building anything (layers that cannot tell are checked after)."""
    shape = net.input_shape
    for index, (layer, entries) in enumerate(zip(net.layers, weights)):
        try:
            expected = layer.weight_shapes(shape)
            shape = tuple(layer.compute_output_shape(shape))
        except (ValueError, TypeError) as error:
            raise ModelFormatError(net._where(index, error)) from None
        if np.prod(shape, dtype=object) > MAX_SAMPLE_SIZE:
            raise ModelFormatError(net._where(index, f"output shape {shape} is too large"))
        if expected is None:
            continue
        found = [tuple(e["shape"]) for e in entries]
        if [tuple(s) for s in expected] != found:
            raise ModelFormatError(net._where(index, f"expected arrays of shapes "
                                                     f"{expected}, the file has {found}"))


def _read_array(archive, info, entry) -> np.ndarray:
    raw = _read_member(archive, info)
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        header = np.lib.format.read_array_header_1_0(stream, max_header_size=MAX_NPY_HEADER)
    elif version == (2, 0):
        header = np.lib.format.read_array_header_2_0(stream, max_header_size=MAX_NPY_HEADER)
    else:
        raise ModelFormatError(f"{info.filename}: unsupported .npy version {version}")
    shape, fortran_order, dtype = header
    if dtype.hasobject:
        raise ModelFormatError(f"{info.filename} holds Python objects (a pickle): refused")
    if fortran_order or dtype != np.dtype(entry["dtype"]) or \
            tuple(shape) != tuple(entry["shape"]):
        raise ModelFormatError(f"{info.filename}: the .npy header ({dtype}, {shape}) does "
                               f"not match {CONFIG_MEMBER} ({entry['dtype']}, "
                               f"{entry['shape']})")
    data = raw[stream.tell():]
    if len(data) != _nbytes(entry):
        raise ModelFormatError(f"{info.filename}: holds {len(data)} data bytes, its "
                               f"header declares {_nbytes(entry)}")
    return np.frombuffer(data, dtype).reshape(shape).copy()


def _restore_shuffle(net, state) -> None:
    if state is None:
        return
    if not isinstance(state, list) or len(state) != 4 or \
            not all(_is_int(v) and 0 <= v < 2**64 for v in state):
        raise ModelFormatError("shuffle: expected 4 integers in [0, 2**64)")
    net._shuffle_state = np.array(state, np.uint64)


def _restore_rng(net, state) -> None:
    if state is None:
        return
    state = _checked_dict(state, {"bit_generator", "state", "has_uint32", "uinteger"}, "rng")
    name = state["bit_generator"]
    inner = state["state"]
    if name not in RNG_NAMES or not isinstance(inner, dict) or set(inner) != {"state", "inc"} \
            or not all(_is_int(v) and 0 <= v < 2**128 for v in inner.values()) \
            or state["has_uint32"] not in (0, 1) or not _is_int(state["uinteger"]) \
            or not 0 <= state["uinteger"] < 2**32:
        raise ModelFormatError("rng: invalid random generator state")
    if type(net.rng.bit_generator).__name__ != name:
        net.rng = np.random.Generator(getattr(np.random, name)())
        for layer in net.layers:
            layer.rng = net.rng
    net.rng.bit_generator.state = state


def _check_optimizer_state(net, state) -> None:
    # try the state on a fresh optimizer of the same config, so that a bad
    # file fails here and not at the next fit
    optimizer = net.optimizer
    if not net.built:
        if state:
            raise ModelFormatError("optimizer state for an unbuilt network")
        return
    probe = type(optimizer).from_config(optimizer.get_config())
    probe.set_state(state)
    try:
        probe.build(net.params, net.dtype)
    except (ValueError, TypeError) as error:
        raise ModelFormatError(f"optimizer state: {error}") from None

