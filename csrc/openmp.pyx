# Reports whether the core was compiled with OpenMP.
cdef extern from *:
    """
    #ifdef _OPENMP
    #define NNCORE_OPENMP 1
    #else
    #define NNCORE_OPENMP 0
    #endif
    """
    int NNCORE_OPENMP

def openmp_enabled():
    """True when the native core was built with OpenMP."""
    return bool(NNCORE_OPENMP)
