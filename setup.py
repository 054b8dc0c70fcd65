"""Build the native core: one extension module per file in csrc/.

OpenMP is used when a tiny test program compiles and links with the
compiler's OpenMP flag; otherwise the core is built serial.

On x86-64 with GCC or clang the kernel modules of SIMD_MODULES are also
built for AVX2 (as `<module>_avx2`); nncore._native loads them where the CPU
runs them.  Their loops vectorize wider, and with -ffp-contract=off every
build rounds exactly alike, so results do not depend on the CPU.  Only the
modules whose AVX2 build saved at least 5% of a benchmark's CPU time get one
(see docs/guide/wheels.md, "Build times"); for the others the second build
cost compile time and bought nothing measurable.

Extensions are cythonized and compiled in parallel, one job per core, the
largest first; no debug information (-g0), which takes a quarter of GCC's
time and is not shipped anyway.
"""
import hashlib
import os
import platform
import shutil
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODULES = ["plan", "data", "dense", "activation", "loss", "optim", "openmp", "cpu", "convpool",
           "conv", "pool", "reshape", "dropout", "batchnorm", "regularize", "augment"]
MODULES += ["embedding", "conv1d", "layernorm", "recurrent"]          # sequences
MODULES += ["residual", "attention", "positional"]                   # transformers
MODULES += ["masked_pool"]                                          # masking
# the modules whose loops do the element-wise work of training and inference
KERNEL_MODULES = ["data", "dense", "activation", "loss", "optim", "convpool", "conv", "pool",
                  "reshape", "dropout", "batchnorm", "regularize", "augment"]
KERNEL_MODULES += ["embedding", "conv1d", "layernorm", "recurrent"]
KERNEL_MODULES += ["residual", "attention", "positional"]
KERNEL_MODULES += ["masked_pool"]
# the kernel modules also built for AVX2: those whose AVX2 build saved >= 5%
# of a benchmark's CPU time (fused conv+pool, LSTM/GRU steps; Adam's update
# at small batches).  The others' loops are memory-bound or a small share of
# the time, next to BLAS; their second build only cost compile time.
SIMD_MODULES = ["convpool", "recurrent", "optim"]
# the modules with no hot loops (the plan runs ops, Cython's shared utility
# code converts arguments): -O1 compiles them in half the time of -O2
LOW_OPT_MODULES = ["plan", "cpu", "openmp", "_cyutility"]
# extra flags of single modules (GCC/clang).  -fno-trapping-math lets loops
# whose float selects guard later arithmetic (fastmath.pxd) vectorize; it
# changes no result, only what the compiler may assume about FP exceptions.
MODULE_FLAGS = {"recurrent": ["-fno-trapping-math"], "attention": ["-fno-trapping-math"]}
SIMD_FLAGS = {"avx2": ["-mavx2", "-mfma"]}
JOBS = os.cpu_count() or 1
SIMD_SOURCES = os.path.join("build", "simd")

OPENMP_TEST = r"""
#include <omp.h>
int main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }
"""


def libomp_prefixes():
    """macOS: $LIBOMP_PREFIX, then Homebrew's libomp (arm64, then Intel prefix)."""
    paths = [os.environ.get("LIBOMP_PREFIX", ""), "/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    return [p for p in paths if p and os.path.isfile(os.path.join(p, "include", "omp.h"))]


def openmp_flags(compiler):
    """(compile flags, link flags) for OpenMP, or ([], []) if it does not build."""
    if os.environ.get("NNCORE_DISABLE_OPENMP"):
        return [], []
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        # Apple clang needs an OpenMP runtime (libomp), e.g. from Homebrew.
        candidates = [(["-Xpreprocessor", "-fopenmp", f"-I{p}/include"], [f"-L{p}/lib", "-lomp"])
                      for p in libomp_prefixes()]
        candidates += [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        tmp = tempfile.mkdtemp()
        try:
            source = os.path.join(tmp, "omp_test.c")
            with open(source, "w") as f:
                f.write(OPENMP_TEST)
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=cflags)
            compiler.link_executable(objects, os.path.join(tmp, "omp_test"),
                                     extra_postargs=lflags)
            return cflags, lflags
        except Exception:
            continue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [], []


def accepted(compiler, flags):
    """True when the compiler compiles a trivial file with these flags."""
    tmp = tempfile.mkdtemp()
    try:
        source = os.path.join(tmp, "flags.c")
        with open(source, "w") as f:
            f.write("int main(void) { return 0; }\n")
        compiler.compile([source], output_dir=tmp, extra_postargs=flags)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# GCC gives up vectorizing a loop that reads many arrays which might overlap
# the one it writes (Winograd's transforms read 16); let it check more pairs
ALIAS_CHECKS = ["--param", "vect-max-version-for-alias-checks=64"]


class BuildExt(build_ext):
    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = JOBS

    def build_extensions(self):
        cflags, lflags = openmp_flags(self.compiler)
        print(f"nncore: OpenMP {'enabled' if cflags else 'not available, serial build'}")
        # -fno-math-errno lets sqrt vectorize (the core never reads errno);
        # -ffp-contract=off: no fused multiply-add, so every build rounds alike
        base = (["/O2"] if self.compiler.compiler_type == "msvc"
                else ["-O3", "-g0", "-fno-math-errno", "-ffp-contract=off"])
        if self.compiler.compiler_type != "msvc" and accepted(self.compiler, ALIAS_CHECKS):
            base += ALIAS_CHECKS
        simd = {}
        if self.compiler.compiler_type != "msvc":
            simd = {level: flags for level, flags in SIMD_FLAGS.items()
                    if accepted(self.compiler, flags)}
        kept = []
        for ext in self.extensions:
            level = ext.name.rsplit("_", 1)[-1]
            if ext.name.endswith(tuple(f"_{name}" for name in SIMD_FLAGS)):
                if level not in simd:
                    continue
                ext.extra_compile_args = base + cflags + simd[level]
            else:
                ext.extra_compile_args = base + cflags
                name = ext.name.rsplit(".", 1)[-1]
                if name not in KERNEL_MODULES and self.compiler.compiler_type != "msvc":
                    # no hot loops in these modules: a lower level compiles them faster
                    opt = "-O1" if name in LOW_OPT_MODULES else "-O2"
                    ext.extra_compile_args = [opt] + ext.extra_compile_args[1:]
            if self.compiler.compiler_type != "msvc":
                module = ext.name.split(".")[-1]
                module = module.rsplit("_", 1)[0] if level in SIMD_FLAGS else module
                ext.extra_compile_args += MODULE_FLAGS.get(module, [])
            ext.extra_link_args = lflags
            kept.append(ext)
        # the largest generated C first, so no long compile starts last
        kept.sort(key=lambda ext: -os.path.getsize(ext.sources[0])
                  if os.path.isfile(ext.sources[0]) else 0)
        self.extensions[:] = kept
        print(f"nncore: kernel builds for {', '.join(sorted(simd)) or 'baseline x86-64 only'}")
        super().build_extensions()

    def copy_extensions_to_source(self):
        """--inplace: also delete SIMD builds of modules that no longer get
        one, which the tree would otherwise keep loading (old kernels)."""
        super().copy_extensions_to_source()
        folder = os.path.join("nncore", "_native")
        current = {ext.name.rsplit(".", 1)[-1] for ext in self.extensions}
        for file in os.listdir(folder):
            module = file.split(".", 1)[0]
            if module.rsplit("_", 1)[-1] in SIMD_FLAGS and module not in current \
                    and file.endswith((".so", ".pyd")):
                print(f"nncore: removing {file} (no {module.rsplit('_', 1)[-1]} build of "
                      f"{module.rsplit('_', 1)[0]} any more)")
                os.remove(os.path.join(folder, file))


def simd_extensions():
    """The kernel modules once more per SIMD level, from generated sources
    that include the module's own (x86-64 only; build_ext drops the levels
    the compiler does not take)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    os.makedirs(SIMD_SOURCES, exist_ok=True)
    exts = []
    for name in SIMD_MODULES:
        for level in SIMD_FLAGS:
            source = os.path.join(SIMD_SOURCES, f"{name}_{level}.pyx")
            text = f'include "{name}.pyx"\n'
            if not os.path.isfile(source) or open(source).read() != text:
                with open(source, "w") as f:
                    f.write(text)
            exts.append(Extension(f"nncore._native.{name}_{level}", [source],
                                  include_dirs=["csrc"]))
    return exts


SHARED_UTILITY = "nncore._native._cyutility"
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
}
# what the generated C files depend on: when none of it changed since they
# were made, cythonize is skipped and build_ext finds the compiled modules of
# the previous build up to date, so a second `pip install .` compiles nothing
STAMP = os.path.join("build", "cython-inputs.sha256")


def cython_inputs_digest() -> str:
    import Cython

    digest = hashlib.sha256(f"{Cython.__version__} {sorted(DIRECTIVES.items())} "
                            f"{SHARED_UTILITY} {sorted(SIMD_FLAGS)} {SIMD_MODULES}".encode())
    for name in sorted(os.listdir("csrc")):
        if name.endswith((".pyx", ".pxd", ".h")):
            digest.update(name.encode())
            with open(os.path.join("csrc", name), "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def generated(source: str) -> str:
    return os.path.splitext(source)[0] + ".c"


def extensions():
    """The extension modules; cythonized unless their C files are current.
    Their Cython utility code lives once, in a shared module."""
    exts = [Extension(f"nncore._native.{name}", [f"csrc/{name}.pyx"]) for name in MODULES]
    exts += simd_extensions()
    shared = Extension(SHARED_UTILITY, [os.path.join("build", "_cyutility.c")])
    digest = cython_inputs_digest()
    previous = open(STAMP).read() if os.path.isfile(STAMP) else None
    c_files = [generated(ext.sources[0]) for ext in exts] + shared.sources
    if previous == digest and all(os.path.isfile(c) for c in c_files):
        for ext in exts:
            ext.sources = [generated(ext.sources[0])]
        return exts + [shared]
    from Cython.Build import cythonize

    exts = cythonize(exts + [shared], nthreads=JOBS, include_path=["csrc"],
                     shared_utility_qualified_name=SHARED_UTILITY,
                     compiler_directives=DIRECTIVES)
    os.makedirs("build", exist_ok=True)
    with open(STAMP, "w") as f:
        f.write(digest)
    return exts


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
