# Which SIMD instruction sets the CPU (and the operating system, which must
# save the wider registers) supports, so that nncore loads the kernel modules
# built for the widest one.  Compilers without __builtin_cpu_supports, and
# CPUs other than x86-64, report the baseline build only.
cdef extern from *:
    """
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    static int nncore_cpu_avx2(void)
    {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    #else
    static int nncore_cpu_avx2(void) { return 0; }
    #endif
    """
    int nncore_cpu_avx2()


def supported_simd():
    """The instruction sets of the kernel builds this CPU runs, widest first,
    ending with "baseline"."""
    levels = []
    if nncore_cpu_avx2():
        levels.append("avx2")
    return levels + ["baseline"]
