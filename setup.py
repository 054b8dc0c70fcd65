"""Build the native core: one extension module per file in csrc/.

OpenMP is used when a tiny test program compiles and links with the
compiler's OpenMP flag; otherwise the core is built serial.
"""
import os
import shutil
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODULES = ["plan", "data", "dense", "activation", "loss", "optim", "openmp", "convpool",
           "conv", "pool", "reshape", "dropout", "batchnorm"]

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
    def build_extensions(self):
        cflags, lflags = openmp_flags(self.compiler)
        print(f"nncore: OpenMP {'enabled' if cflags else 'not available, serial build'}")
        # -fno-math-errno lets sqrt vectorize (the core never reads errno)
        base = ["/O2"] if self.compiler.compiler_type == "msvc" else ["-O3", "-fno-math-errno"]
        if self.compiler.compiler_type != "msvc" and accepted(self.compiler, ALIAS_CHECKS):
            base += ALIAS_CHECKS
        for ext in self.extensions:
            ext.extra_compile_args = base + cflags
            ext.extra_link_args = lflags
        super().build_extensions()


def extensions():
    from Cython.Build import cythonize

    exts = [Extension(f"nncore._native.{name}", [f"csrc/{name}.pyx"]) for name in MODULES]
    return cythonize(
        exts,
        include_path=["csrc"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
