"""The compiled core.  Its modules take BLAS from scipy.linalg.cython_blas.

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
