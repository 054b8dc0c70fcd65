/* Process-level helpers of the plan executor (included by plan.pyx only, so
 * there is one copy of this state per process).
 *
 * Fork gate.  A fork while another thread is inside threaded BLAS leaves the
 * BLAS thread pool broken (the parent can deadlock in the runtime's fork
 * handler, the child in its next call).  Every native section that may call
 * BLAS runs between gate_enter() and gate_leave(); before a fork,
 * gate_close() stops new sections from starting and waits until the running
 * ones have left, so the fork happens with no nncore code inside BLAS.
 * Sections are short (one chunk of samples or one training step).
 *
 * Clock.  now_seconds() is a monotonic clock used to decide when a long
 * native call should look for pending signals.
 *
 * Flags.  flag_get/flag_set read and write an int shared between the worker
 * threads of one call.
 */
#ifndef NNCORE_RUNTIME_H
#define NNCORE_RUNTIME_H

#include <time.h>

#ifdef _WIN32
/* no fork on Windows: the gate does nothing */
static inline void gate_enter(void) {}
static inline void gate_leave(void) {}
static inline int gate_close(double timeout) { (void)timeout; return 1; }
static inline void gate_open(void) {}
static inline void gate_reset(void) {}
static inline double now_seconds(void)
{
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
#else

static int gate_busy = 0;      /* sections running now */
static int gate_closed = 0;      /* a fork is waiting for the sections to end */

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

static inline void gate_enter(void)
{
    for (;;) {
        __atomic_add_fetch(&gate_busy, 1, __ATOMIC_SEQ_CST);
        if (!__atomic_load_n(&gate_closed, __ATOMIC_SEQ_CST))
            return;
        __atomic_sub_fetch(&gate_busy, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&gate_closed, __ATOMIC_SEQ_CST))
            pause_briefly();
    }
}

static inline void gate_leave(void)
{
    __atomic_sub_fetch(&gate_busy, 1, __ATOMIC_SEQ_CST);
}

/* 1 when no section is running (and none can start until gate_open), 0 when
   sections were still running after `timeout` seconds */
static inline int gate_close(double timeout)
{
    double deadline = now_seconds() + timeout;
    __atomic_store_n(&gate_closed, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&gate_busy, __ATOMIC_SEQ_CST) > 0) {
        if (now_seconds() > deadline)
            return 0;
        pause_briefly();
    }
    return 1;
}

static inline void gate_open(void)
{
    __atomic_store_n(&gate_closed, 0, __ATOMIC_SEQ_CST);
}

/* in a forked child: the threads that were in or waiting at the gate are gone */
static inline void gate_reset(void)
{
    __atomic_store_n(&gate_busy, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&gate_closed, 0, __ATOMIC_SEQ_CST);
}
#endif

#ifdef _MSC_VER
static inline int flag_get(int* flag) { return *(volatile int*)flag; }
static inline void flag_set(int* flag, int value) { *(volatile int*)flag = value; }
#else
static inline int flag_get(int* flag) { return __atomic_load_n(flag, __ATOMIC_SEQ_CST); }
static inline void flag_set(int* flag, int value)
{
    __atomic_store_n(flag, value, __ATOMIC_SEQ_CST);
}
#endif

#endif
