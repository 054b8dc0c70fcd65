# Reports and sets the OpenMP thread count of the native core (a serial
# build reports False and one thread).
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define NNCORE_OPENMP 1
    static void nncore_set_threads(int n) { omp_set_num_threads(n); }
    static int nncore_get_threads(void) { return omp_get_max_threads(); }
    #else
    #define NNCORE_OPENMP 0
    static void nncore_set_threads(int n) { (void)n; }
    static int nncore_get_threads(void) { return 1; }
    #endif
    """
    int NNCORE_OPENMP
    void nncore_set_threads(int n)
    int nncore_get_threads()


def openmp_enabled():
    """True when the native core was built with OpenMP."""
    return bool(NNCORE_OPENMP)


def set_openmp_threads(int n):
    nncore_set_threads(n)


def get_openmp_threads():
    return nncore_get_threads()
