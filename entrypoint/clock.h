/* Milliseconds on the monotonic clock: for deadlines and durations, which
 * must not jump when the wall clock is set. */
#ifndef BANDAGE_CLOCK_H
#define BANDAGE_CLOCK_H

#include <time.h>

static inline long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

#endif
