/* tsdb/clock.c -- wall clock (pinnable by tests) and monotonic clock. */
#include "tsdb/base.h"

#include <time.h>

static volatile int64_t pinned_ms;

int64_t tsdb_now_ms(void)
{
    int64_t p = pinned_ms;
    if (p != 0)
        return p;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tsdb_clock_pin(int64_t ms)
{
    pinned_ms = ms;
}

int64_t tsdb_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
