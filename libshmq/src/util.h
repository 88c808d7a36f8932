/* SPDX-License-Identifier: MIT */
/* Small internal helpers shared by every subsystem. */
#ifndef SHMQ_UTIL_H
#define SHMQ_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

#define SHMQ_INTERNAL __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static inline uint64_t shmq__now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void shmq__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline uint64_t shmq__round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* Deadline for a relative timeout: 0 = try once, UINT64_MAX = forever. */
static inline uint64_t shmq__deadline(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return UINT64_MAX;
    if (timeout_ns == 0)
        return 0;
    return shmq__now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ns;
}

/* Names: [A-Za-z0-9_.-], no leading '.', no "..", 1..max chars;
 * dots refused entirely when allow_dot is 0. */
SHMQ_INTERNAL int shmq__check_name(const char *name, size_t max,
                                   int allow_dot);

/* "/shmq.<instance>" or "/shmq.<instance>.<queue>" into buf. */
SHMQ_INTERNAL int shmq__shm_name(char *buf, size_t cap, const char *instance,
                                 const char *queue);

#endif
