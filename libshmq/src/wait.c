/* SPDX-License-Identifier: MIT */
/*
 * Waiting: an eventcount per condition on a 32-bit shared futex word.
 *
 *   word = epoch << 1 | waiters
 *
 * Waiter                                   Poster
 *   v = fetch_or(word, 1) | 1   [E1]         publish state (seq_cst RMW) [E3]
 *   fence(seq_cst)              [E2]         v = load(word, seq_cst)     [E4]
 *   re-check condition                       if (v & 1 &&
 *   futex_wait(word, v, deadline)               CAS(word, v, v + 1))    [E5]
 *                                               futex_wake(word, all)
 *
 * Dekker: either the waiter's re-check (after E1/E2) sees the poster's
 * published state, or the poster's load E4 (after its seq_cst RMW E3) sees
 * the waiter flag set by E1. In the second case the CAS E5 changes the
 * word, so a waiter that has not yet slept fails FUTEX_WAIT with EAGAIN
 * (the kernel compares the word under its own lock) and one that has
 * slept is woken. E1 pairs with E4; E2 pairs with E3.
 *
 * v + 1 clears the flag and bumps the epoch in one step, so a sleep costs
 * at most one FUTEX_WAKE however many posts follow it; the next waiter
 * sets the flag again. Sleeping on the eventcount word, never on a ring
 * index, guarantees the value a waiter sleeps on changes when it must
 * wake.
 *
 * Shared futexes only (never FUTEX_PRIVATE_FLAG): the words live in
 * memory mapped by several processes.
 *
 * Who sleeps is recorded in the sleeper's own process-table entry (sleep
 * records, layout.h), never in a counter on the queue: a process killed
 * in its sleep cannot take itself off a count, but its records stop
 * counting when it dies and its repair clears them.
 */
#include "wait.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val,
                  const struct timespec *ts, uint32_t val3)
{
    return syscall(SYS_futex, (uint32_t *)uaddr, op, val, ts, NULL, val3);
}

uint32_t shmq__ec_prepare(struct shmq_ec *ec)
{
    /* E1: pairs with E4 in shmq__ec_post(). */
    uint32_t v = atomic_fetch_or_explicit(&ec->word, 1u,
                                          memory_order_seq_cst) | 1u;
    /* E2: orders the caller's re-check after E1; pairs with E3. */
    atomic_thread_fence(memory_order_seq_cst);
    return v;
}

int shmq__ec_wait(struct shmq_ec *ec, uint32_t key, uint64_t deadline)
{
    struct timespec ts, *tsp = NULL;

    if (deadline != UINT64_MAX) {
        if (shmq__now_ns(CLOCK_MONOTONIC) >= deadline)
            return -ETIMEDOUT;
        ts.tv_sec = (time_t)(deadline / 1000000000u);
        ts.tv_nsec = (long)(deadline % 1000000000u);
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
     * wait interrupted by a signal and restarted never stretches it. The
     * kernel reads the word and queues us atomically with respect to
     * FUTEX_WAKE: the ordering point here is the syscall itself. */
    long r = futex(&ec->word, FUTEX_WAIT_BITSET, key, tsp,
                   FUTEX_BITSET_MATCH_ANY);
    if (r < 0 && errno == ETIMEDOUT)
        return -ETIMEDOUT;
    /* 0, EAGAIN (word moved), EINTR: re-check. */
    return 0;
}

void shmq__ec_post(struct shmq_ec *ec)
{
    /* E4: pairs with E1; the caller's seq_cst RMW is E3. */
    uint32_t v = atomic_load_explicit(&ec->word, memory_order_seq_cst);
    if (likely(!(v & 1u)))
        return;
    /* E5: only the poster that clears the flag wakes. */
    if (atomic_compare_exchange_strong_explicit(&ec->word, &v, v + 1u,
                                                memory_order_seq_cst,
                                                memory_order_relaxed))
        futex(&ec->word, FUTEX_WAKE, INT_MAX, NULL, 0);
}

void shmq__ec_wake_all(struct shmq_ec *ec)
{
    /* Bump the epoch by 2 (flag untouched) so every key goes stale. */
    atomic_fetch_add_explicit(&ec->word, 2u, memory_order_seq_cst);
    futex(&ec->word, FUTEX_WAKE, INT_MAX, NULL, 0);
}

/* Sleep records are statistics: nothing decides anything on them, so
 * relaxed order is enough. The claim is a CAS so that two threads of the
 * process never take the same record; the loop is bounded by the number
 * of records. */
int shmq__sleep_note(struct shmq_reg_proc *p, uint32_t rec)
{
    for (unsigned i = 0; i < SHMQ_PROC_SLEEPS; i++) {
        uint32_t e = 0;
        if (atomic_load_explicit(&p->sleeps[i], memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&p->sleeps[i], &e, rec,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed))
            return (int)i;
    }
    return -1;
}

void shmq__sleep_clear(struct shmq_reg_proc *p, int i, uint32_t rec)
{
    if (i < 0 || (unsigned)i >= SHMQ_PROC_SLEEPS)
        return;
    /* A CAS from our own record: if the slot no longer holds it, it is
     * not ours to clear. */
    atomic_compare_exchange_strong_explicit(&p->sleeps[i], &rec, 0,
                                            memory_order_relaxed,
                                            memory_order_relaxed);
}
