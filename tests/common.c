/* SPDX-License-Identifier: MIT */
#include "common.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *t_instance(void)
{
    static char buf[32];
    static unsigned n;
    snprintf(buf, sizeof(buf), "t%dx%u", (int)getpid(), n++);
    return buf;
}

shmq_admin_t *t_admin(const char *instance)
{
    struct shmq_admin_opts o;
    shmq_admin_t *a = NULL;
    shmq_admin_opts_init(&o);
    o.flags = SHMQ_ADMIN_CREATE;
    int rc = shmq_admin_open(instance, &o, &a);
    cr_assert_eq(rc, 0, "shmq_admin_open(%s): %s", instance, shmq_strerror(rc));
    return a;
}

void t_instance_destroy(shmq_admin_t *a)
{
    if (!a)
        return;
    shmq_admin_destroy(a);
    shmq_admin_close(a);
}

void t_create(shmq_admin_t *a, const char *name, uint32_t capacity,
              uint32_t msg_max)
{
    struct shmq_queue_config c;
    shmq_queue_config_init(&c);
    c.capacity = capacity;
    c.msg_max = msg_max;
    int rc = shmq_admin_create(a, name, &c);
    cr_assert_eq(rc, 0, "create %s: %s", name, shmq_strerror(rc));
}

shmq_t *t_open(const char *instance, const char *name)
{
    struct shmq_open_opts o;
    shmq_t *q = NULL;
    shmq_open_opts_init(&o);
    o.instance = instance;
    int rc = shmq_open(name, &o, &q);
    cr_assert_eq(rc, 0, "open %s: %s", name, shmq_strerror(rc));
    return q;
}

int t_wait(pid_t pid, int timeout_ms)
{
    int st = 0;
    for (int waited = 0;; waited++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return st;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* ---- fixture ------------------------------------------------------------ */

char t_inst[32];
shmq_admin_t *t_adm;

void t_setup(void)
{
    t_nkids = 0;
    snprintf(t_inst, sizeof(t_inst), "%s", t_instance());
    t_adm = t_admin(t_inst);
}

void t_teardown(void)
{
    t_kill_kids();
    t_instance_destroy(t_adm);
    t_adm = NULL;
}

void t_mkq(const char *name, uint32_t capacity, uint32_t msg_max,
           uint32_t max_deliveries, uint32_t dlq_capacity,
           uint64_t lease_timeout_ns)
{
    struct shmq_queue_config c;
    shmq_queue_config_init(&c);
    c.capacity = capacity;
    c.msg_max = msg_max;
    c.max_deliveries = max_deliveries;
    c.dlq_capacity = dlq_capacity;
    c.lease_timeout_ns = lease_timeout_ns;
    int rc = shmq_admin_create(t_adm, name, &c);
    cr_assert_eq(rc, 0, "create %s: %s", name, shmq_strerror(rc));
}

struct shmq_stats t_stats(shmq_t *q)
{
    struct shmq_stats st;
    memset(&st, 0xa5, sizeof(st));
    st.size = sizeof(st);
    int rc = shmq_stats(q, &st);
    cr_assert_eq(rc, 0, "stats: %s", shmq_strerror(rc));
    return st;
}

int t_procs_count(void)
{
    int n = shmq_admin_procs(t_adm, NULL, 0);
    cr_assert_geq(n, 0);
    return n;
}

void t_send_str(shmq_t *q, const char *s)
{
    int rc = shmq_send(q, s, strlen(s), 0);
    cr_assert_eq(rc, 0, "send \"%s\": %s", s, shmq_strerror(rc));
}

uint64_t t_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t t_rnd(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1du;
}

/* ---- children ----------------------------------------------------------- */

_Atomic uint32_t *t_fail_flag;
pid_t t_kids[T_MAX_KIDS];
unsigned t_nkids;

void t_child_fail(void)
{
    if (t_fail_flag)
        atomic_store_explicit(t_fail_flag, 1, memory_order_relaxed);
    _exit(CHILD_FAIL);
}

unsigned t_track(pid_t pid)
{
    for (unsigned i = 0; i < t_nkids; i++)
        if (t_kids[i] == 0) {
            t_kids[i] = pid;
            return i;
        }
    cr_assert_lt(t_nkids, T_MAX_KIDS);
    t_kids[t_nkids] = pid;
    return t_nkids++;
}

void t_untrack(pid_t pid)
{
    for (unsigned i = 0; i < t_nkids; i++)
        if (t_kids[i] == pid)
            t_kids[i] = 0;
}

unsigned t_slot(pid_t pid)
{
    for (unsigned i = 0; i < t_nkids; i++)
        if (t_kids[i] == pid)
            return i;
    cr_assert_fail("child %d is not tracked", (int)pid);
    return 0;
}

pid_t t_spawn(void (*fn)(const void *), const void *arg)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork");
    if (pid == 0) {
        /* Never outlive the test, whatever happens to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(CHILD_FAIL);
        fn(arg);
        _exit(0);
    }
    t_track(pid);
    return pid;
}

int t_reap(pid_t pid, int timeout_ms)
{
    int st = t_wait(pid, timeout_ms);
    t_untrack(pid);
    return st;
}

void t_reap_ok(pid_t pid, int timeout_ms, const char *what)
{
    int st = t_reap(pid, timeout_ms);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %s %d", what,
              WIFSIGNALED(st) ? "killed by signal" : "exit status",
              WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

void t_kill_kids(void)
{
    for (unsigned i = 0; i < t_nkids; i++)
        if (t_kids[i] > 0) {
            kill(t_kids[i], SIGKILL);
            waitpid(t_kids[i], NULL, 0);
        }
    t_nkids = 0;
}

void *t_shared_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED, "mmap %zu", n);
    return p;
}

shmq_t *t_child_open_ring(const char *name, uint32_t ring, int64_t spin_ns)
{
    struct shmq_open_opts o;
    shmq_t *q = NULL;
    shmq_open_opts_init(&o);
    o.instance = t_inst;
    o.ring = ring;
    if (spin_ns != T_SPIN_DEFAULT)
        o.spin_ns = spin_ns;
    int rc = shmq_open(name, &o, &q);
    CHILD_REQUIRE(rc == 0, "open %s: %s", name, shmq_strerror(rc));
    return q;
}

shmq_t *t_child_open(const char *name, int64_t spin_ns)
{
    return t_child_open_ring(name, SHMQ_RING_MAIN, spin_ns);
}
