# Process-level helpers of the native core (runtime.h): a monotonic clock,
# atomics on ints shared between threads, a short sleep, and the rule for
# how often a long native call looks for pending signals (Ctrl-C).

cdef extern from "runtime.h" nogil:
    double now_seconds()
    void pause_briefly()
    int flag_get(int* flag)
    void flag_set(int* flag, int value)
    int counter_add(int* counter, int value)

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1


# True when a long call that last looked for signals at `checked` (a
# now_seconds() time) should look again: every 20 ms
cdef inline bint signals_due(double checked) noexcept nogil:
    return now_seconds() - checked > 0.02
