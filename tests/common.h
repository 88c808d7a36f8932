/* SPDX-License-Identifier: MIT */
/* Helpers shared by the tests: private instances, child processes. */
#ifndef SHMQ_TEST_COMMON_H
#define SHMQ_TEST_COMMON_H

#include <shmq/admin.h>
#include <shmq/shmq.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

/* T_TSAN or T_ASAN in a sanitizer build: sanitizers slow every atomic and
 * copy down (TSan much more than ASan), so tests scale their counts. */
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#elif __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif

/* A fresh instance name private to this test process ("t<pid>x<n>") and
 * its registry, created; removed with t_instance_destroy. */
const char *t_instance(void);
shmq_admin_t *t_admin(const char *instance);
void t_instance_destroy(shmq_admin_t *a);

/* Create a queue with the given capacity and msg_max (other settings
 * default) in instance; asserts success. */
void t_create(shmq_admin_t *a, const char *name, uint32_t capacity,
              uint32_t msg_max);
/* Open a queue in instance (main ring); asserts success. */
shmq_t *t_open(const char *instance, const char *name);

/* Wait for a child; returns its wait status. Kills it with SIGKILL if it
 * has not ended within timeout_ms (a test never hangs). */
int t_wait(pid_t pid, int timeout_ms);

/* ---- fixture: one private instance per test ----------------------------- */

/* The running test's instance and its registry, set by t_setup. */
extern char t_inst[32];
extern shmq_admin_t *t_adm;

/* Suite .init and .fini: t_setup creates a fresh instance (t_inst, t_adm)
 * with no children tracked; t_teardown kills and reaps the children still
 * tracked (t_kill_kids) and removes the instance. */
void t_setup(void);
void t_teardown(void);

/* Create a queue in t_adm with these settings (others default); asserts
 * success. */
void t_mkq(const char *name, uint32_t capacity, uint32_t msg_max,
           uint32_t max_deliveries, uint32_t dlq_capacity,
           uint64_t lease_timeout_ns);

/* shmq_stats of q; asserts success. */
struct shmq_stats t_stats(shmq_t *q);

/* Entries in the process table of t_adm; asserts success. */
int t_procs_count(void);

/* Send the string s (without its NUL), not waiting; asserts success. */
void t_send_str(shmq_t *q, const char *s);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t t_mono_ns(void);

/* xorshift64*: the next of a reproducible sequence of pseudo-random
 * numbers; *state (not 0) is the caller's. */
uint64_t t_rnd(uint64_t *state);

/* ---- children ----------------------------------------------------------- */

/* Exit status of a child that failed a CHILD_REQUIRE. */
#define CHILD_FAIL 3

/* If set, a child failing a CHILD_REQUIRE stores 1 there (relaxed) before
 * it exits, so that its peers can stop too. */
extern _Atomic uint32_t *t_fail_flag;

/* Leave with CHILD_FAIL (after setting *t_fail_flag) without running the
 * test runner's exit handlers. */
_Noreturn void t_child_fail(void);

/* In a child (or a worker thread of the test process): report and leave
 * with t_child_fail. */
#define CHILD_REQUIRE(cond, ...)                                             \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "child %d: ", (int)getpid());                   \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            t_child_fail();                                                  \
        }                                                                    \
    } while (0)

/* The children t_teardown kills if they are still there: t_kids[0 ..
 * t_nkids - 1], 0 for a free slot. */
#define T_MAX_KIDS 32
extern pid_t t_kids[T_MAX_KIDS];
extern unsigned t_nkids;

/* Track pid in the first free slot (asserts there is one); returns the
 * slot. */
unsigned t_track(pid_t pid);
/* Free the slot of pid, if tracked. */
void t_untrack(pid_t pid);
/* The slot of a tracked pid; asserts it is tracked. */
unsigned t_slot(pid_t pid);

/* Fork a child that runs fn(arg) and exits 0 (it dies with SIGKILL if the
 * test process ends first); tracks it and returns its pid. */
pid_t t_spawn(void (*fn)(const void *), const void *arg);

/* t_wait, then untrack pid. */
int t_reap(pid_t pid, int timeout_ms);

/* t_reap, and assert the child exited with status 0; the message starts
 * with what. */
void t_reap_ok(pid_t pid, int timeout_ms, const char *what);

/* SIGKILL and reap every tracked child. */
void t_kill_kids(void);

/* n bytes of anonymous memory shared with the children forked later;
 * asserts success. */
void *t_shared_alloc(size_t n);

/* In a child (or a worker thread of the test process): open queue name of
 * t_inst on ring (SHMQ_RING_MAIN or SHMQ_RING_DLQ), polling spin_ns before
 * sleeping (T_SPIN_DEFAULT: the library's default); CHILD_REQUIRE
 * success. */
#define T_SPIN_DEFAULT INT64_C(-1)
shmq_t *t_child_open_ring(const char *name, uint32_t ring, int64_t spin_ns);
/* The same on the main ring. */
shmq_t *t_child_open(const char *name, int64_t spin_ns);

#endif
