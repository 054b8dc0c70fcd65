# Reports and sets the OpenMP thread count of the native core (a serial
# build reports False and one thread).
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define NNCORE_OPENMP 1
    /* GNU libgomp keeps its thread pool across fork() without the threads,
       so a child's next parallel region can hang; LLVM/Intel libomp and
       MSVC's vcomp handle fork themselves (or have none) */
    #if defined(__GNUC__) && !defined(__clang__) && !defined(__INTEL_COMPILER)
    #define NNCORE_OPENMP_FORK_SAFE 0
    #else
    #define NNCORE_OPENMP_FORK_SAFE 1
    #endif
    static void nncore_set_threads(int n) { omp_set_num_threads(n); }
    static int nncore_get_threads(void) { return omp_get_max_threads(); }
    #else
    #define NNCORE_OPENMP 0
    #define NNCORE_OPENMP_FORK_SAFE 1
    static void nncore_set_threads(int n) { (void)n; }
    static int nncore_get_threads(void) { return 1; }
    #endif
    """
    int NNCORE_OPENMP
    int NNCORE_OPENMP_FORK_SAFE
    void nncore_set_threads(int n)
    int nncore_get_threads()


def openmp_enabled():
    """Whether the native core was built with OpenMP.

    Returns
    -------
    bool
        True when OpenMP loops are compiled in.

    Examples
    --------
    >>> import nncore
    >>> isinstance(nncore.openmp_enabled(), bool)
    True
    """
    return bool(NNCORE_OPENMP)


def set_openmp_threads(int n):
    nncore_set_threads(n)


def get_openmp_threads():
    return nncore_get_threads()


def openmp_fork_safe():
    """False when the OpenMP runtime cannot start new threads in a forked child."""
    return bool(NNCORE_OPENMP_FORK_SAFE)
