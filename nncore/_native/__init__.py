"""The compiled core.  Its modules take BLAS from scipy.linalg.cython_blas.

Some kernel modules are built once more for AVX2 (SIMD_MODULES in
setup.py): importing this package puts the widest build this CPU runs under
the module's own name, so `nncore._native.convpool` is `convpool_avx2` on a
CPU with AVX2 and FMA; modules without an AVX2 build stay the baseline one.
NNCORE_SIMD=baseline (set before nncore is imported) asks for the baseline
build.  Every build rounds alike.

Importing that module the usual way first runs all of scipy.linalg's
__init__ (hundreds of modules, most of nncore's import time).  The core only
needs the BLAS function table, so the extension module is loaded on its own
when scipy.linalg is not imported yet; any problem falls back to the normal
import.  (The one visible difference: until scipy.linalg itself is imported,
the attribute `scipy.linalg.cython_blas` is absent; `from scipy.linalg import
cython_blas` works.)
"""
import importlib.machinery
import importlib.util
import os
import sys

_NAME = "scipy.linalg.cython_blas"
_FOLDER = os.path.dirname(os.path.abspath(__file__))


def _check_built() -> None:
    """Refuse, saying what to run, when the compiled modules are not here
    (Python found an unbuilt source checkout before the installed nncore)."""
    files = os.listdir(_FOLDER)
    if not any(file.startswith("plan.") and file.endswith(tuple(
            importlib.machinery.EXTENSION_SUFFIXES)) for file in files):
        checkout = os.path.dirname(os.path.dirname(_FOLDER))
        raise ImportError(
            f"nncore's compiled core is not built in {os.path.dirname(_FOLDER)}: Python "
            f"found the source checkout {checkout} (the current directory, or on "
            f"PYTHONPATH) before any installed nncore. Either install it "
            f"(python -m pip install {checkout}) and run Python from another "
            f"directory, or build it in place for development "
            f"(python setup.py build_ext --inplace in {checkout}).")


_check_built()

# How long an idle OpenMP worker spins before it sleeps, set for the runtime
# nncore's modules load (GNU libgomp: spin iterations; LLVM libomp:
# milliseconds).  A training step runs a few parallel regions; between them
# the runtimes' defaults (libgomp about 300,000 iterations, libomp 200 ms)
# keep the idle workers spinning, which on a machine shared with other work
# takes the cores the working threads need (measured: 2-thread training 2.5x
# slower than 1 thread under load, and no slower with a short spin).
OPENMP_IDLE_SPIN = {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "0"}


def _load_openmp_runtime() -> None:
    """Load the OpenMP runtime with OPENMP_IDLE_SPIN where the user set
    neither it nor OMP_WAIT_POLICY.  Runtimes read these variables once, when
    they load, so they are removed again afterwards: other libraries'
    runtimes keep their own defaults."""
    added = {} if "OMP_WAIT_POLICY" in os.environ else {
        name: value for name, value in OPENMP_IDLE_SPIN.items() if name not in os.environ}
    os.environ.update(added)
    try:
        importlib.import_module(f"{__name__}.openmp")
    finally:
        for name in added:
            os.environ.pop(name, None)


_load_openmp_runtime()


def _load_cython_blas() -> None:
    if _NAME in sys.modules or "scipy.linalg" in sys.modules:
        return
    try:
        import scipy
        folder = os.path.join(scipy.__path__[0], "linalg")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "cython_blas" + suffix)
            if os.path.isfile(path):
                loader = importlib.machinery.ExtensionFileLoader(_NAME, path)
                spec = importlib.util.spec_from_file_location(_NAME, path, loader=loader)
                if spec is None:    # not expected for an existing file and a loader
                    break
                module = importlib.util.module_from_spec(spec)
                sys.modules[_NAME] = module
                try:
                    loader.exec_module(module)
                except BaseException:
                    del sys.modules[_NAME]
                    raise
                return
    except Exception:
        pass
    importlib.import_module(_NAME)


_load_cython_blas()


def _simd_levels() -> list:
    """The SIMD levels to try, widest first: what the CPU supports, capped by
    NNCORE_SIMD."""
    from .cpu import supported_simd
    levels = supported_simd()
    wanted = os.environ.get("NNCORE_SIMD", "").strip().lower()
    if wanted:
        if wanted not in ("avx2", "baseline"):
            raise ImportError(f"NNCORE_SIMD={wanted!r}: expected avx2 or baseline")
        order = ["avx2", "baseline"]
        levels = [level for level in levels if order.index(level) >= order.index(wanted)]
    return levels


def _builds(level: str) -> list:
    """The modules built for this SIMD level, by their own names."""
    names = set()
    for file in os.listdir(os.path.dirname(__file__)):
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            if file.endswith(f"_{level}{suffix}"):
                names.add(file[:-len(f"_{level}{suffix}")])
    return sorted(names)


def _load_kernels() -> str:
    """Alias every kernel module to its widest build this CPU runs; returns
    the level used ("baseline" when there is no wider build)."""
    for level in _simd_levels():
        names = _builds(level) if level != "baseline" else []
        if not names:
            continue
        try:
            modules = {name: importlib.import_module(f"{__name__}.{name}_{level}")
                       for name in names}
        except ImportError:       # a damaged or partial install: try a narrower build
            continue
        for name, module in modules.items():
            sys.modules[f"{__name__}.{name}"] = module
            globals()[name] = module
        return level
    return "baseline"


SIMD = _load_kernels()
