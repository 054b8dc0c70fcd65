"""Hostile and damaged model files: every one raises ModelFormatError (never
another exception type, never a crash), runs no code and keeps memory bounded."""
import io
import json
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import nncore
from nncore import ModelFormatError, saving
from nncore.network import loads

EXECUTED = []


class Payload:
    """Unpickling this would run code: the tests check that it never does."""

    def __reduce__(self):
        return (EXECUTED.append, ("pickle payload ran",))


@pytest.fixture(scope="module")
def model():
    net = nncore.Network([nncore.Dense(3, activation="tanh"), nncore.Dense(2)], seed=0)
    net.use("mse", optimizer="sgd")
    net.fit(np.ones((4, 2)), np.zeros((4, 2)), epochs=1, verbose=0)
    return net


@pytest.fixture(scope="module")
def good(model):
    return saving.dumps(model)


def members(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def archive(items, compression=zipfile.ZIP_STORED) -> bytes:
    """A zip of (name, bytes) pairs, in order (duplicates allowed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in items:
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data,
                        compress_type=compression)
    return buffer.getvalue()


def edited(good: bytes, edit=None, extra=(), drop=()) -> bytes:
    """The good file with its JSON document changed by `edit(document)`."""
    parts = members(good)
    document = json.loads(parts["nncore.json"])
    if edit is not None:
        edit(document)
    parts["nncore.json"] = json.dumps(document).encode()
    return archive([(k, v) for k, v in parts.items() if k not in drop] + list(extra))


def npy(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def refused(data: bytes, match: str = None):
    with pytest.raises(ModelFormatError, match=match):
        loads(data)


def same_model(a, b) -> bool:
    return a.get_config() == b.get_config() and all(
        np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def test_the_good_file_loads(good, model):
    assert same_model(loads(good), model)


def test_truncation_at_every_offset(good):
    for size in range(len(good)):
        refused(good[:size])


def test_random_byte_flips_raise_or_change_nothing(good, model):
    # a flip in a field nothing depends on (a timestamp, "version made by")
    # may load: then the model must be exactly the original one
    rng = np.random.default_rng(0)
    loaded = 0
    for _ in range(1500):
        data = bytearray(good)
        position = int(rng.integers(len(data)))
        data[position] ^= int(rng.integers(1, 256))
        try:
            net = loads(bytes(data))
        except ModelFormatError:
            continue
        loaded += 1
        assert same_model(net, model), position
    assert loaded < 300


def test_not_a_model_file(tmp_path):
    refused(b"", "not a zip")
    refused(b"hello world" * 10, "not a zip")
    refused(pickle.dumps(Payload()), "not a zip")
    refused(npy(np.array([Payload()], dtype=object), allow_pickle=True), "not a zip")
    refused(archive([("other.json", b"{}")]), "unexpected archive member")
    refused(archive([("nncore.json", b"{not json")]), "not valid JSON")
    refused(archive([("nncore.json", b"\xff\xfe")]), "not valid JSON")
    refused(archive([("nncore.json", b"[1, 2]")]), "wrong magic")
    refused(archive([("nncore.json", b"[" * 100000 + b"]" * 100000)]))
    with pytest.raises(ModelFormatError, match="expected model-file bytes"):
        loads("a string")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ModelFormatError):
        nncore.load(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        nncore.load(tmp_path / "missing")
    assert EXECUTED == []


def test_wrong_magic_and_future_version(good):
    refused(edited(good, lambda d: d.update(magic="keras")), "wrong magic")
    refused(edited(good, lambda d: d.update(format_version=2, nncore_version="9.0")),
            r"format version 2, written by nncore '9.0'.* reads format versions up to 1: "
            r"upgrade nncore")
    refused(edited(good, lambda d: d.update(format_version="1")), "invalid format version")
    refused(edited(good, lambda d: d.update(format_version=0)), "invalid format version")


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.pop("rng"), r"missing keys \['rng'\]"),
    (lambda d: d.update(surprise=1), r"unexpected keys \['surprise'\]"),
    (lambda d: d["network"].update(dtype="float16"), "dtype must be"),
    (lambda d: d["network"].update(dtype=["float32"]), "dtype must be"),
    (lambda d: d["network"].update(input_shape=[-2]), "input_shape"),
    (lambda d: d["network"].update(input_shape=None), "needs its input_shape"),
    (lambda d: d["network"].update(seed="0"), "seed"),
    (lambda d: d["network"].update(layers=[]), "every layer|non-empty list"),
    (lambda d: d["network"]["layers"][0].update({"class": "os.system"}),
     "unknown layer class 'os.system'"),
    (lambda d: d["network"]["layers"][1].update({"class": "Conv9D"}),
     r"unknown layer class 'Conv9D'; did you mean 'Conv2D'( or 'Conv1D')?\?.*register your own"),
    (lambda d: d["network"]["layers"][0]["config"].update(units=-1),
     r"layer 0 \(Dense\): invalid config .*units must be a positive integer"),
    (lambda d: d["network"]["layers"][0]["config"].update(evil="__import__('os')"),
     r"layer 0 \(Dense\): invalid config.*unexpected keyword"),
    (lambda d: d["network"]["layers"][0]["config"].update(activation={"a": 1}),
     r"layer 0 \(Dense\): invalid config"),
    (lambda d: d["network"]["layers"][0].update(config=[]), "'config' must be an object"),
    (lambda d: d["network"].update(loss={"class": "eval", "config": {}}),
     "unknown loss class 'eval'"),
    (lambda d: d["network"].update(optimizer={"class": "SGD", "config": {"learning_rate": -1}}),
     r"optimizer \(SGD\): invalid config"),
    (lambda d: d.update(built="yes"), "'built' must be true or false"),
    (lambda d: d.update(built=False), "an unbuilt network has no weights"),
    (lambda d: d["weights"].pop(), "must list the arrays of every layer"),
    (lambda d: d["weights"][0][0].update(dtype="|O"), "not allowed"),
    (lambda d: d["weights"][0][0].update(dtype="<U8"), "not allowed"),
    (lambda d: d["weights"][0][0].update(dtype="f4"), "not allowed"),
    (lambda d: d["weights"][0][0].update(dtype="nonsense"), "invalid dtype"),
    (lambda d: d["weights"][0][0].update(shape=[2, -3]), "shape"),
    (lambda d: d["weights"][0][0].update(shape="23"), "shape"),
    (lambda d: d["weights"][0][0].update(member="../w0.npy"), "invalid member name"),
    (lambda d: d["weights"][0][1].update(member="w0.npy"), "do not match"),
    (lambda d: d["weights"][0].pop(), "do not match"),
    (lambda d: d["rng"].update(bit_generator="MT19937"), "invalid random generator state"),
    (lambda d: d["rng"]["state"].update(state=-1), "invalid random generator state"),
    (lambda d: d["rng"]["state"].update(inc=2**200), "invalid random generator state"),
    (lambda d: d.update(optimizer_state=[{"member": "w9.npy", "dtype": "<f4",
                                          "shape": [1]}]), "do not match"),
])
def test_schema_violations(good, edit, match):
    refused(edited(good, edit), match)


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_missing_and_extra_arrays(good):
    refused(edited(good, drop=["w1.npy"]), "do not match")
    refused(edited(good, extra=[("w9.npy", npy(np.zeros(3, np.float32)))]), "do not match")
    refused(edited(good, extra=[("w0.npy", npy(np.zeros(3, np.float32)))]), "duplicate")


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("name", ["../evil.npy", "/etc/passwd", "w0.npy/../../x",
                                  "C:\\evil.npy", "dir/w0.npy", "w0.npy\x00.txt"])
def test_path_traversal_member_names(good, name):
    # (zipfile cuts names at a NUL byte, which makes the last one a duplicate)
    refused(edited(good, extra=[(name, b"x")]), "unexpected archive member|duplicate")


def test_wrong_shapes_and_dtypes_for_a_layer(good):
    # consistent manifest and array, but not what a Dense(3) on 2 inputs has
    def resize(d):
        d["weights"][0][0]["shape"] = [3, 3]
    refused(edited(good, resize, extra=[("w0.npy", npy(np.zeros((3, 3), np.float32)))],
                   drop=["w0.npy"]),
            r"layer 0 \(Dense\): expected arrays of shapes \[\(2, 3\), \(3,\)\], "
            r"the file has \[\(3, 3\), \(3,\)\]")

    def widen(d):
        d["weights"][1][0]["dtype"] = "<f8"
    refused(edited(good, widen, extra=[("w2.npy", npy(np.zeros((3, 2))))], drop=["w2.npy"]),
            r"layer 1 \(Dense\): expected an array float32\[3, 2\], the file has <f8\[3, 2\]")
    # the config changes the layer instead: Dense(4) where the file has 3 units
    def units(d):
        d["network"]["layers"][0]["config"]["units"] = 4
    refused(edited(good, units), r"layer 0 \(Dense\): expected arrays of shapes")


def test_npy_header_disagreeing_with_the_manifest(good):
    refused(edited(good, extra=[("w0.npy", npy(np.zeros((3, 2), np.float32)))],
                   drop=["w0.npy"]), "does not match")
    refused(edited(good, extra=[("w0.npy", npy(np.zeros((2, 3), np.float64)))],
                   drop=["w0.npy"]), "does not match")
    fortran = npy(np.asfortranarray(np.zeros((2, 3), np.float32)))
    refused(edited(good, extra=[("w0.npy", fortran)], drop=["w0.npy"]), "does not match")
    short = npy(np.zeros((2, 3), np.float32))[:-4]
    refused(edited(good, extra=[("w0.npy", short)], drop=["w0.npy"]), "data bytes")
    refused(edited(good, extra=[("w0.npy", b"not an npy file at all..")], drop=["w0.npy"]))


def test_pickled_object_members_never_run(good):
    bomb = npy(np.array([Payload()] * 6, dtype=object).reshape(2, 3), allow_pickle=True)
    refused(edited(good, extra=[("w0.npy", bomb)], drop=["w0.npy"]), "Python objects")
    def as_object(d):
        d["weights"][0][0]["dtype"] = "|O"
    refused(edited(good, as_object, extra=[("w0.npy", bomb)], drop=["w0.npy"]), "not allowed")
    refused(edited(good, extra=[("w0.npy", pickle.dumps(Payload()))], drop=["w0.npy"]))
    assert EXECUTED == []


def test_huge_declared_sizes_allocate_nothing(good):
    def huge_array(d):
        d["weights"][0][0]["shape"] = [10**12, 10**12]
    def huge_layer(d):
        d["network"]["layers"][0]["config"]["units"] = 10**12
        d["weights"][0][0]["shape"] = [2, 10**12]
        d["weights"][0][1]["shape"] = [10**12]
    def huge_input(d):
        d["network"]["input_shape"] = [10**15]
    tracemalloc.start()
    try:
        for edit, match in [(huge_array, "declares"), (huge_layer, "declares"),
                            (huge_input, "expected arrays of shapes")]:
            refused(edited(good, edit), match)
        activations = nncore.Network([nncore.ReLU()], input_shape=(2, 2)).build()
        refused(edited(saving.dumps(activations), lambda d: d["network"].update(
            input_shape=[10**7, 10**7])), r"layer 0 \(ReLU\): output shape .* too large")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def huge_file_size(data: bytes, member: str, size: int) -> bytes:
    """Patch the declared sizes of `member` in its local and central headers."""
    data = bytearray(data)
    name = member.encode()
    # (signature, offset of the name, offsets of compressed/uncompressed size)
    for signature, name_offset, fields in ((b"PK\x03\x04", 30, (18, 22)),
                                           (b"PK\x01\x02", 46, (20, 24))):
        at = data.find(signature)
        while at >= 0:
            if data[at + name_offset:at + name_offset + len(name)] == name:
                for field in fields:
                    struct.pack_into("<I", data, at + field, size)
            at = data.find(signature, at + 4)
    return bytes(data)


def test_zip_bombs_and_inconsistent_sizes(good):
    # a compressed member that inflates to 64 MiB from a few kB: refused
    # before anything is inflated
    parts = members(good)
    data = archive([(k, v) for k, v in parts.items() if k != "w0.npy"] +
                   [("w0.npy", bytes(64 << 20))], zipfile.ZIP_DEFLATED)
    assert len(data) < 200_000
    tracemalloc.start()
    try:
        refused(data, "compressed")
        refused(huge_file_size(good, "w0.npy", 2**31), "declares")
        refused(huge_file_size(good, "nncore.json", 2**31), "declares")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_json_constants_and_big_numbers(good):
    refused(edited(good, lambda d: d["network"]["layers"][0]["config"].update(
        units=float("nan"))), "NaN is not allowed")
    text = members(good)["nncore.json"].decode()
    parts = members(good)
    parts["nncore.json"] = text.replace('"seed":0', '"seed":' + "9" * 5000).encode()
    assert parts["nncore.json"] != text.encode()
    refused(archive(parts.items()), "Exceeds the limit")


def test_optimizer_state_checked_at_load(good):
    # SGD without momentum keeps one state array: its step count
    assert json.loads(members(good)["nncore.json"])["optimizer_state"] == \
        [{"member": "w4.npy", "dtype": "<i8", "shape": [1]}]

    def not_a_step_count(d):
        d["optimizer_state"] = [{"member": "w9.npy", "dtype": "<f4", "shape": [2]}]
    refused(edited(good, not_a_step_count, extra=[("w9.npy", npy(np.zeros(2, np.float32)))],
                   drop=["w4.npy"]),
            "optimizer state: SGD: the last state array must be the step count")

    def two_arrays(d):
        d["optimizer_state"].append({"member": "w9.npy", "dtype": "<f4", "shape": [2]})
    refused(edited(good, two_arrays, extra=[("w9.npy", npy(np.zeros(2, np.float32)))]),
            "optimizer state: SGD: expected 1 state arrays, received 2")


def test_convolution_layers_are_checked_before_building():
    net = nncore.Network([nncore.Conv2D(2, 3), nncore.BatchNormalization(), nncore.Dropout(0.5),
                          nncore.Flatten(), nncore.Dense(2)], seed=0).build((5, 5, 1))
    good = saving.dumps(net)
    assert same_model(loads(good), net)

    def huge_filters(d):
        d["network"]["layers"][0]["config"]["filters"] = 10**9
    def kernel_too_large(d):
        d["network"]["layers"][0]["config"]["kernel_size"] = [9, 9]
    def moving_mean_missing(d):
        d["weights"][1].pop()
    tracemalloc.start()
    try:
        refused(edited(good, huge_filters), r"layer 0 \(Conv2D\): expected arrays of shapes "
                                            r"\[\(3, 3, 1, 1000000000\)")
        refused(edited(good, kernel_too_large), r"layer 0 \(Conv2D\)")
        refused(edited(good, moving_mean_missing), "do not match")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
