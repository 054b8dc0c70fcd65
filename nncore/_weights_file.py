"""Weights files (`Network.save_weights` / `load_weights`): the model file's
container (see `modelfile`: a zip archive of a JSON document and .npy
arrays, written atomically, read without pickles and with every size
checked) holding only the arrays of every layer, in layer order."""
from __future__ import annotations

import os

from . import modelfile, saving
from ._safe_write import write_file
from ._checks import check_save_path
from ._version import __version__
from .errors import ModelFormatError

MAGIC = "nncore.weights"
FORMAT_VERSION = 1
DOCUMENT_KEYS = {"magic", "format_version", "nncore_version", "weights"}


def save_weights(net, path) -> None:
    check_save_path(path, "Network.save_weights")
    if not net.built:
        raise RuntimeError("Network.save_weights: the network is not built yet; "
                           "fit it, call build(input_shape) or pass input_shape=")
    arrays: list = []
    document = {"magic": MAGIC, "format_version": FORMAT_VERSION,
                "nncore_version": __version__,
                "weights": [modelfile.add_arrays(layer.get_weights(), arrays)
                            for layer in net.layers]}
    write_file(path, lambda f: modelfile.write_archive(f, document, arrays),
               "Network.save_weights")


def load_weights(net, path) -> None:
    if not net.built:
        if net.input_shape is None or not net.layers:
            raise RuntimeError("Network.load_weights: the network is not built yet; "
                               "pass input_shape= or call build(input_shape) first")
        net.build()
    with modelfile.open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        per_layer = modelfile.guarded(_read, f, size)
    if len(per_layer) != len(net.layers):
        raise ValueError(f"Network.load_weights: the file holds the weights of "
                         f"{len(per_layer)} layers, the network has {len(net.layers)}")
    net.set_weights([array for arrays in per_layer for array in arrays])


def _read(f, size: int) -> list:
    """The arrays of every layer in the weights file `f` of `size` bytes."""
    with modelfile.open_archive(f, size) as archive:
        members = modelfile.checked_members(archive, size)
        document = modelfile.read_document(archive, members)
        if isinstance(document, dict) and document.get("magic") == saving.MAGIC:
            raise ModelFormatError("this is a nncore model file, not a weights file: "
                                   "read it with nncore.load")
        if not isinstance(document, dict) or document.get("magic") != MAGIC:
            raise ModelFormatError("not a nncore weights file (wrong magic)")
        version = document.get("format_version")
        if not (isinstance(version, int) and modelfile.is_int(version)
                and 1 <= version <= FORMAT_VERSION):
            raise ModelFormatError(f"weights file format version {version!r} is not one "
                                   f"this nncore ({__version__}) reads")
        document = modelfile.checked_dict(document, DOCUMENT_KEYS, modelfile.CONFIG_MEMBER)
        weights = document["weights"]
        if not isinstance(weights, list):
            raise ModelFormatError("'weights' must list the arrays of every layer")
        for entries in weights:
            modelfile.check_entries(entries, "weights")
        listed = [modelfile.CONFIG_MEMBER] + [e["member"] for entries in weights
                                              for e in entries]
        if len(set(listed)) != len(listed) or set(listed) != set(members):
            raise ModelFormatError(f"the archive members {sorted(members)} do not match "
                                   f"the arrays listed in {modelfile.CONFIG_MEMBER}")
        arrays = []
        for entries in weights:
            for entry in entries:
                modelfile.check_entry_size(entry, members[entry["member"]])
            arrays.append([modelfile.read_array(archive, members[e["member"]], e)
                           for e in entries])
    return arrays
