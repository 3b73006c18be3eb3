/* hc_time.h -- monotonic clock and timeval helpers (header-only). */
#ifndef HC_TIME_H
#define HC_TIME_H

#include <sys/time.h>
#include <time.h>

/* Seconds on the monotonic clock: never jumps with the wall clock. */
static inline double hc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The same clock at its last tick (a few ms behind hc_now at most, and
 * far cheaper where clock_gettime is not a vDSO call): for expiry checks
 * on hot paths that tolerate a tick. */
static inline double hc_now_coarse(void)
{
#ifdef CLOCK_MONOTONIC_COARSE
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#else
    return hc_now();
#endif
}

static inline struct timeval hc_timeval(double seconds)
{
    struct timeval tv;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1; /* never "no timeout" */
    return tv;
}

static inline struct timespec hc_timespec(double seconds)
{
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    return ts;
}

#endif
