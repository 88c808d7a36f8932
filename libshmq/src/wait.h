/* SPDX-License-Identifier: MIT */
/* Eventcounts on shared futex words (see wait.c). */
#ifndef SHMQ_WAIT_H
#define SHMQ_WAIT_H

#include "layout.h"
#include "util.h"

/* Waiter, step 1: announce the wait; returns the key to sleep on. After
 * this, re-check the condition, then call shmq__ec_wait. */
SHMQ_INTERNAL uint32_t shmq__ec_prepare(struct shmq_ec *ec);

/* Waiter, step 2: sleep until the epoch moves past key or the deadline
 * (CLOCK_MONOTONIC ns, UINT64_MAX = none). Returns 0 (re-check) or
 * -ETIMEDOUT. */
SHMQ_INTERNAL int shmq__ec_wait(struct shmq_ec *ec, uint32_t key,
                                uint64_t deadline);

/* Poster: call after the state change was published with a seq_cst
 * read-modify-write (the slot-word exchange or CAS). Wakes sleepers at most
 * once per sleep: only a poster that clears the waiter flag calls
 * FUTEX_WAKE. */
SHMQ_INTERNAL void shmq__ec_post(struct shmq_ec *ec);

/* Unconditional: bump the epoch and wake everyone (repair, delete). */
SHMQ_INTERNAL void shmq__ec_wake_all(struct shmq_ec *ec);

/* Sleep records (layout.h) in the caller's own process entry p: claim a
 * free one holding rec (shmq_sleep_rec) before sleeping; returns its
 * index, or -1 if all are taken (sleep anyway, uncounted). Clear it with
 * the same index and rec when the blocking call returns (-1: nothing). */
SHMQ_INTERNAL int shmq__sleep_note(struct shmq_reg_proc *p, uint32_t rec);
SHMQ_INTERNAL void shmq__sleep_clear(struct shmq_reg_proc *p, int i,
                                     uint32_t rec);

#endif
