"""What a built package must satisfy: metadata, compiled modules, OpenMP."""
import importlib
import os
from importlib import metadata
from pathlib import Path

import pytest

import nncore


def installed_distribution():
    """The installed nncore distribution, or skip when testing an in-place build."""
    try:
        dist = metadata.distribution("nncore")
    except metadata.PackageNotFoundError:
        pytest.skip("nncore is not installed (in-place build)")
    package_dir = Path(nncore.__file__).resolve().parent
    if package_dir != Path(dist.locate_file("nncore")).resolve():
        pytest.skip(f"testing nncore from {package_dir}, not the installed distribution")
    return dist


def test_version_is_single_sourced():
    assert installed_distribution().version == nncore.__version__


def test_declared_extras():
    extras = set(installed_distribution().metadata.get_all("Provides-Extra"))
    assert {"test", "examples", "plot", "sklearn", "dask", "onnx", "bench"} <= extras


def test_compiled_modules_import():
    native_dir = Path(nncore.__file__).resolve().parent / "_native"
    names = {p.name.split(".")[0] for p in native_dir.iterdir() if p.suffix in (".so", ".pyd")}
    assert {"plan", "openmp"} <= names
    from nncore._native.cpu import supported_simd
    runnable = supported_simd()
    for name in sorted(names):
        if name.rsplit("_", 1)[-1] == "avx2" and \
                name.rsplit("_", 1)[-1] not in runnable:
            continue            # a build for instructions this CPU lacks
        importlib.import_module(f"nncore._native.{name}")


def test_ships_no_sources_or_data():
    files = [str(f) for f in installed_distribution().files or ()]
    unwanted = [f for f in files if f.endswith((".c", ".pyx", ".pxd", ".gz", ".npz"))
                or f.startswith("tests/")]
    assert not unwanted, f"the package must ship only the library, found {unwanted}"


@pytest.mark.skipif("NNCORE_EXPECT_OPENMP" not in os.environ,
                    reason="set NNCORE_EXPECT_OPENMP=1 (or 0) to check how the core was built")
def test_openmp_as_expected():
    expected = os.environ["NNCORE_EXPECT_OPENMP"] == "1"
    assert nncore.openmp_enabled() is expected
