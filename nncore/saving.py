"""Saving and loading networks in a format that cannot carry code.

A model file (see `modelfile`) holds one JSON document -- magic, format
version, nncore version, the network config (registered class names + JSON
configs), the random generator state, and a manifest of the arrays -- and
one .npy member per weight / state / optimizer array.  This module maps a
network to that document and back: loading parses JSON only, constructs only
registered classes and checks every array against the shapes the layers
would create before building anything.
"""
from __future__ import annotations

import io
import os
from typing import List, Optional

import numpy as np

from . import _budget
from . import metrics as metrics_module
from . import modelfile
from . import registry
from ._version import __version__
from .errors import ModelFormatError, in_layer
from .optimizers import Optimizer
from ._safe_write import write_file
from .modelfile import (CONFIG_MEMBER, add_arrays, check_entries,
                        check_entry_size, checked_dict, checked_members, checked_shape,
                        guarded, is_int, open_archive, read_array, read_document,
                        write_archive)

MAGIC = "nncore.model"
FORMAT_VERSION = 1
MAX_SAMPLE_SIZE = 1 << 40           # per-sample elements of any layer output
RNG_NAMES = ("PCG64", "PCG64DXSM")

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
            raise type(error)(in_layer(index, net.layers[index], error)) from None
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


def network_from_config(config, cls):
    """A new (unbuilt) network from `network_config` output."""
    config = _checked_network_dict(config)
    dtype = config["dtype"]
    if dtype not in ("float32", "float64"):
        raise ModelFormatError(f"network config: dtype must be 'float32' or 'float64', "
                               f"got {dtype!r}")
    input_shape = config["input_shape"]
    if input_shape is not None:
        input_shape = checked_shape(input_shape, "input_shape", positive=True)
    seed = config["seed"]
    if seed is not None and not (is_int(seed) and seed >= 0):
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
    return checked_dict(config, keys, "network config")


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
    entry = checked_dict(entry, {"class", "config"}, where)
    if not isinstance(entry["class"], str):
        raise ModelFormatError(f"{where}: 'class' must be a string")
    config = entry["config"]
    if not isinstance(config, dict):
        raise ModelFormatError(f"{where}: 'config' must be an object")
    return entry["class"], config


# ----------------------------------------------------------------- writing
def save(net, path, include_optimizer: bool = True, caller: str = "Network.save") -> None:
    """Write `net` to `path` (see `_safe_write.write_file`)."""
    check_savable(net, caller)
    write_file(path, lambda f: write(net, f, include_optimizer), caller)


def check_savable(net, caller: str) -> None:
    """Refuse a network that `load` could not read back."""
    if not net.layers:
        raise ValueError(f"{caller}: the network has no layers, and a model file holds at "
                         f"least one; add layers before saving")


def dumps(net, include_optimizer: bool = True) -> bytes:
    """The model file of `net` as bytes (used for pickling and copies)."""
    check_savable(net, "Network.copy (or pickling)")
    buffer = io.BytesIO()
    write(net, buffer, include_optimizer)
    return buffer.getvalue()


def write(net, f, include_optimizer: bool = True) -> None:
    """Write the model file of `net` to the binary file object `f`."""
    config = network_config(net)
    arrays: List[np.ndarray] = []
    weights = None
    if net.built:
        weights = [add_arrays(layer.get_weights(), arrays) for layer in net.layers]
    optimizer_state = None
    if include_optimizer and net.optimizer is not None:
        optimizer_state = add_arrays(net.optimizer.get_state(), arrays)
    document = {"magic": MAGIC, "format_version": FORMAT_VERSION,
                "nncore_version": __version__, "network": config, "built": bool(net.built),
                "rng": _rng_state(net.rng), "shuffle": _shuffle_state(net),
                "weights": weights,
                "optimizer_state": optimizer_state}
    write_archive(f, document, arrays)


def _shuffle_state(net) -> Optional[list]:
    state = net.shuffle_state
    return None if state is None else [int(word) for word in state]


def _rng_state(rng) -> Optional[dict]:
    state = rng.bit_generator.state
    return state if state.get("bit_generator") in RNG_NAMES else None


# ----------------------------------------------------------------- reading
def load(path, cls):
    """The network (of class cls) saved in `path`; ModelFormatError if the
    file is damaged, hostile, from a newer format or names an unregistered
    class."""
    with modelfile.open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            return guarded(read, f, size, cls)
        except MemoryError:
            raise MemoryError(f"nncore.load: not enough memory to load {os.fspath(path)!r} "
                              f"({size:,} bytes; loading needs little more than that)"
                              ) from None


def loads(data: bytes, cls):
    """The network (of class cls) in the model-file bytes `data` (see `dumps`)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ModelFormatError(f"expected model-file bytes, got {type(data).__name__}")
    return guarded(read, io.BytesIO(data), len(data), cls)


def read(f, size: int, cls):
    """The network in the binary file object `f` of `size` bytes."""
    with open_archive(f, size) as archive:
        members = checked_members(archive, size)
        document = _checked_document(read_document(archive, members))
        weights, optimizer_state = document["weights"], document["optimizer_state"]
        entries = [e for layer_entries in (weights or []) for e in layer_entries]
        entries += optimizer_state or []
        listed = [CONFIG_MEMBER] + [e["member"] for e in entries]
        if len(set(listed)) != len(listed) or set(listed) != set(members):
            raise ModelFormatError(f"the archive members {sorted(members)} do not match "
                                   f"the arrays listed in {CONFIG_MEMBER}")
        for entry in entries:
            check_entry_size(entry, members[entry["member"]])
        try:          # before anything is allocated: the layers take the arrays as read
            _budget.check(sum(modelfile.nbytes(e) for e in entries),
                          "the arrays of this model file")
        except ValueError as error:
            raise ModelFormatError(str(error)) from None

        net = network_from_config(document["network"], cls)
        if document["built"]:
            _check_weight_shapes(net, weights)
            net.build()
            _read_weights(net, archive, members, weights)
        _restore_rng(net, document["rng"])
        _restore_shuffle(net, document["shuffle"])
        if optimizer_state:      # (empty: an optimizer that has not been built yet)
            if net.optimizer is None:
                raise ModelFormatError("the file has optimizer state but no optimizer")
            state = [read_array(archive, members[e["member"]], e) for e in optimizer_state]
            _check_optimizer_state(net, state)
            net.optimizer.set_state(state, copy=False)
    return net


def _read_weights(net, archive, members: dict, weights: list) -> None:
    for index, (layer, layer_entries) in enumerate(zip(net.layers, weights)):
        targets = list(layer.params) + list(layer.state)
        if len(targets) != len(layer_entries):
            raise ModelFormatError(in_layer(index, net.layers[index], f"expected {len(targets)} arrays, the file has {len(layer_entries)}"))
        for target, entry in zip(targets, layer_entries):
            if np.dtype(entry["dtype"]).newbyteorder("=") != target.dtype or \
                    tuple(entry["shape"]) != target.shape:
                raise ModelFormatError(in_layer(index, net.layers[index], f"expected an array {target.dtype}{list(target.shape)}, "
                           f"the file has {entry['dtype']}{entry['shape']}"))
            read_array(archive, members[entry["member"]], entry, out=target)


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
    document = checked_dict(document, DOCUMENT_KEYS, CONFIG_MEMBER)
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
            check_entries(entries, "weights")
    elif weights is not None:
        raise ModelFormatError("an unbuilt network has no weights")
    if document["optimizer_state"] is not None:
        check_entries(document["optimizer_state"], "optimizer_state")
    return document


def _check_weight_shapes(net, weights) -> None:
    """Compare the file's arrays with the shapes each layer would create,
    before building anything (layers that cannot tell are checked after)."""
    shape = net.input_shape
    for index, (layer, entries) in enumerate(zip(net.layers, weights)):
        try:
            expected = layer.weight_shapes(shape)
            shape = tuple(layer.compute_output_shape(shape))
        except (ValueError, TypeError) as error:
            raise ModelFormatError(in_layer(index, net.layers[index], error)) from None
        if np.prod(shape, dtype=object) > MAX_SAMPLE_SIZE:
            raise ModelFormatError(in_layer(index, net.layers[index], f"output shape {shape} is too large"))
        if expected is None:
            continue
        found = [tuple(e["shape"]) for e in entries]
        if [tuple(s) for s in expected] != found:
            raise ModelFormatError(in_layer(index, net.layers[index], f"expected arrays of shapes "
                                                     f"{expected}, the file has {found}"))


def _restore_shuffle(net, state) -> None:
    if state is None:
        return
    if not isinstance(state, list) or len(state) != 4 or \
            not all(is_int(v) and 0 <= v < 2**64 for v in state):
        raise ModelFormatError("shuffle: expected 4 integers in [0, 2**64)")
    net.shuffle_state = np.array(state, np.uint64)


def _restore_rng(net, state) -> None:
    if state is None:
        return
    state = checked_dict(state, {"bit_generator", "state", "has_uint32", "uinteger"}, "rng")
    name = state["bit_generator"]
    inner = state["state"]
    if name not in RNG_NAMES or not isinstance(inner, dict) or set(inner) != {"state", "inc"} \
            or not all(is_int(v) and 0 <= v < 2**128 for v in inner.values()) \
            or state["has_uint32"] not in (0, 1) or not is_int(state["uinteger"]) \
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
    own_loader = type(probe).load_state is not Optimizer.load_state
    try:
        if own_loader:              # a user's state protocol: try it on a copy
            probe.set_state(state)
        probe.build(net.params, net.dtype)
        if not own_loader:          # nncore's own: check shapes without copying
            probe.check_state(state)
    except (ValueError, TypeError) as error:
        raise ModelFormatError(f"optimizer state: {error}") from None
