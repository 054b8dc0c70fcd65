/* Process-level helpers of the native core, declared once for Cython in
 * runtime.pxd.  They hold no state: the fork gate that uses them keeps its
 * two counters in plan.pyx, so there is one gate per process.
 *
 * Clock.  now_seconds() is a monotonic clock used to decide when a long
 * native call should look for pending signals.
 *
 * Atomics.  flag_get/flag_set read and write an int shared between threads;
 * counter_add adds to one and returns the new value.
 *
 * pause_briefly() sleeps about 0.2 ms (a thread waiting at the fork gate).
 */
#ifndef NNCORE_RUNTIME_H
#define NNCORE_RUNTIME_H

#include <time.h>

#ifdef _WIN32
static inline double now_seconds(void)
{
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
/* no fork on Windows: the gate never closes, so nobody waits */
static inline void pause_briefly(void) {}
#else
static inline double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline void pause_briefly(void)
{
    struct timespec t = {0, 200000};   /* 0.2 ms */
    nanosleep(&t, NULL);
}
#endif

#ifdef _MSC_VER
#include <intrin.h>
static inline int flag_get(int* flag) { return *(volatile int*)flag; }
static inline void flag_set(int* flag, int value) { *(volatile int*)flag = value; }
static inline int counter_add(int* counter, int value)
{
    return (int)_InterlockedExchangeAdd((volatile long*)counter, (long)value) + value;
}
#else
static inline int flag_get(int* flag) { return __atomic_load_n(flag, __ATOMIC_SEQ_CST); }
static inline void flag_set(int* flag, int value)
{
    __atomic_store_n(flag, value, __ATOMIC_SEQ_CST);
}
static inline int counter_add(int* counter, int value)
{
    return __atomic_add_fetch(counter, value, __ATOMIC_SEQ_CST);
}
#endif

#endif
